//! How much git work a worker runs at once, from its memory budget (`worker.memory_budget_mib`)
//! rather than a fixed count. A job holds real memory only while libgit2 fetches and indexes
//! its pack or pushes (a clone writes just the lock tools' files, and a job waiting on the LLM
//! or the forge holds next to nothing), so the budget is shared out in git slots of
//! [`GIT_TASK_MIB`] each, after what the process needs idle, and libgit2's own caches are held
//! to a part of it.

/// What one fetch or push of a repository the size of the benchmark's (3,000 files) adds to
/// the worker's resident memory at its peak, measured with `bench/memory` (see BENCHMARKS.md).
pub const GIT_TASK_MIB: u32 = 4;

/// The worker's resident memory idle after start-up (runtime, pools, TLS roots), measured.
pub const IDLE_MIB: u32 = 48;

/// Git slots for a budget of `budget_mib`, or `explicit` when it is set (`git_concurrency`
/// other than 0). Never fewer than one: a worker too small for its budget still makes progress,
/// one clone at a time.
pub fn git_slots(budget_mib: u32, explicit: u16) -> usize {
    if explicit > 0 {
        return usize::from(explicit);
    }
    let spare = budget_mib.saturating_sub(IDLE_MIB);
    usize::try_from((spare / GIT_TASK_MIB).max(1)).unwrap_or(1)
}

/// The share of the budget libgit2 may keep in its object cache and in mapped pack windows, in
/// bytes: a quarter of it each, which no set of slots then exceeds together with their work.
pub fn libgit2_limits(budget_mib: u32) -> (usize, usize) {
    let quarter = usize::try_from(budget_mib / 4).unwrap_or(usize::MAX / 4) * 1024 * 1024;
    let floor = 8 * 1024 * 1024;
    (quarter.max(floor), quarter.max(floor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_come_from_the_budget_unless_a_count_is_given() {
        assert_eq!(git_slots(IDLE_MIB + 10 * GIT_TASK_MIB, 0), 10);
        assert_eq!(git_slots(16, 0), 1, "a budget below idle still gets one slot");
        assert_eq!(git_slots(4096, 3), 3);
    }

    #[test]
    fn libgit2_caches_get_a_quarter_of_the_budget() {
        assert_eq!(libgit2_limits(512), (128 << 20, 128 << 20));
        assert_eq!(libgit2_limits(0), (8 << 20, 8 << 20));
    }
}
