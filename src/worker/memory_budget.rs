//! How much git work a worker runs at once, from its memory budget (`worker.memory_budget_mib`)
//! rather than a fixed count. A job holds real memory only while libgit2 fetches and indexes
//! its pack or pushes: a clone writes just the lock tools' files, and a job waiting on the LLM
//! or the forge holds next to nothing. What a fetch holds grows with the repository's pack
//! (measured: a 6 MiB pack, 3,000 files, peaks at about 14 MiB of heap plus the 6 MiB pack
//! mapped; see BENCHMARKS.md), so each git task takes from the budget what its repository's
//! last pack says it needs, and small repositories run many at once where big ones queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

/// The worker's resident memory idle after start-up (runtime, pools, TLS roots), measured.
pub const IDLE_MIB: u32 = 48;

/// What a job in flight holds besides its git work (its context and LLM exchange, HTTP
/// buffers), measured: kept out of the budget for each job the worker runs at once.
pub const JOB_KIB: u32 = 512;

/// What a git task takes before its repository was ever fetched here.
pub const UNKNOWN_REPOSITORY_MIB: u32 = 16;

/// Peak memory of a fetch per MiB of the pack it receives (heap plus the mapped pack),
/// rounded up from the measurements above.
const MIB_PER_PACK_MIB: f64 = 3.5;

/// The git slots of one worker process.
pub struct GitBudget {
    permits: Arc<Semaphore>,
    total: u32,
    /// `git_concurrency` was set: every task takes one permit of that many.
    counted: bool,
    /// MiB a task of each repository takes, from its last fetch.
    learned: Mutex<HashMap<String, u32>>,
}

impl GitBudget {
    /// A budget of `budget_mib` for a worker running `jobs` at once, or `explicit` slots of
    /// one task each when that is not 0.
    pub fn new(budget_mib: u32, jobs: u16, explicit: u16) -> Self {
        let jobs_mib = (u32::from(jobs) * JOB_KIB).div_ceil(1024);
        let (total, counted) = match explicit {
            0 => (budget_mib.saturating_sub(IDLE_MIB + jobs_mib).max(1), false),
            n => (u32::from(n), true),
        };
        GitBudget {
            permits: Arc::new(Semaphore::new(total as usize)),
            total,
            counted,
            learned: Mutex::new(HashMap::new()),
        }
    }

    /// The semaphore behind the budget, for tests that watch it.
    pub fn semaphore(&self) -> &Arc<Semaphore> {
        &self.permits
    }

    /// Waits until a git task on `repository` fits in the budget. A task bigger than the whole
    /// budget takes all of it (it runs alone) rather than never.
    pub async fn acquire(&self, repository: &str) -> Result<OwnedSemaphorePermit, AcquireError> {
        let weight = self.weight(repository);
        self.permits.clone().acquire_many_owned(weight).await
    }

    fn weight(&self, repository: &str) -> u32 {
        if self.counted {
            return 1;
        }
        let learned = self.learned.lock().unwrap_or_else(PoisonError::into_inner);
        learned
            .get(repository)
            .copied()
            .unwrap_or(UNKNOWN_REPOSITORY_MIB)
            .clamp(1, self.total)
    }

    /// Records the size of the pack a fetch of `repository` received.
    pub fn learn(&self, repository: &str, pack_bytes: u64) {
        let pack_mib = pack_bytes as f64 / (1024.0 * 1024.0);
        let need = (pack_mib * MIB_PER_PACK_MIB).ceil().max(1.0) as u32;
        let mut learned = self.learned.lock().unwrap_or_else(PoisonError::into_inner);
        learned.insert(repository.to_owned(), need);
    }

    /// How many tasks of the default size fit at once, for the start-up log.
    pub fn default_slots(&self) -> u32 {
        match self.counted {
            true => self.total,
            false => (self.total / UNKNOWN_REPOSITORY_MIB).max(1),
        }
    }
}

/// The share of the budget libgit2 may keep in its object cache and in mapped pack windows, in
/// bytes: a quarter of it each.
pub fn libgit2_limits(budget_mib: u32) -> (usize, usize) {
    let quarter = usize::try_from(budget_mib / 4).unwrap_or(usize::MAX / 4) * 1024 * 1024;
    let floor = 8 * 1024 * 1024;
    (quarter.max(floor), quarter.max(floor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_takes_what_its_repository_last_needed() {
        let budget = GitBudget::new(IDLE_MIB + 100 + 1, 2, 0);
        assert_eq!(budget.weight("https://h/a.git"), UNKNOWN_REPOSITORY_MIB);
        budget.learn("https://h/a.git", 6 << 20);
        assert_eq!(budget.weight("https://h/a.git"), 21);
        budget.learn("https://h/tiny.git", 10 << 10);
        assert_eq!(budget.weight("https://h/tiny.git"), 1);
        budget.learn("https://h/huge.git", 1 << 30);
        assert_eq!(
            budget.weight("https://h/huge.git"),
            100,
            "runs alone, not never"
        );
        let first = budget.acquire("https://h/a.git").await.unwrap();
        assert_eq!(budget.semaphore().available_permits(), 79);
        drop(first);
        assert_eq!(budget.semaphore().available_permits(), 100);
    }

    #[test]
    fn an_explicit_count_gives_that_many_slots() {
        let budget = GitBudget::new(4096, 8, 3);
        budget.learn("https://h/a.git", 6 << 20);
        assert_eq!(budget.weight("https://h/a.git"), 1);
        assert_eq!(budget.semaphore().available_permits(), 3);
        assert_eq!(GitBudget::new(16, 8, 0).semaphore().available_permits(), 1);
    }

    #[test]
    fn libgit2_caches_get_a_quarter_of_the_budget() {
        assert_eq!(libgit2_limits(512), (128 << 20, 128 << 20));
        assert_eq!(libgit2_limits(0), (8 << 20, 8 << 20));
    }
}
