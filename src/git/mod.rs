//! The git layer: clone a repository's default branch (writing to disk all of its files or only
//! those the lock tools need), read its files from the work tree or the object database, commit
//! named files, and push the remediation branch, all through git2 (libgit2).
//!
//! Everything here is blocking: callers run it inside `tokio::task::spawn_blocking`.
//! Credentials reach libgit2 only through the credential callback (`credentials`), never through
//! a URL or `.git/config`. Every failure is a [`GitError`], already classified as transient
//! (retry with backoff) or permanent (fail the operation with the message as it is).

pub mod branch;
pub mod clone;
pub mod credentials;
pub mod error;
pub mod pack_order;
pub mod push;
pub mod remote_guard;
pub mod scratch;
pub mod tree_files;
pub mod workspace;

use std::time::Duration;

pub use branch::check_branch_name;
pub use clone::{
    Materialize, clone_branch, clone_default_branch, write_head_tree_to, write_whole_tree,
};
pub use credentials::{GitAuth, remote_callbacks};
pub use error::GitError;
pub use push::{PushOutcome, foreign_tip, push_branch, remote_branch_commit};
pub use remote_guard::check_remote;
pub use scratch::ScratchDir;
pub use tree_files::{
    TreeFile, blob_size, head_files, head_links, head_tree, read_blob, read_head_file,
    read_tree_file, tree_files,
};
pub use workspace::{
    CommitSpec, commit_files, diff_stat, inspect_entry, open_clone, read_file, write_files,
};

/// Sets libgit2's process-wide network timeouts (connect, and each read or write on the
/// connection) so a stalled git server cannot hold a worker forever.
///
/// # Safety
/// libgit2 keeps these in C globals without synchronisation: call this once at start-up, before
/// any thread uses git2.
pub unsafe fn set_network_timeouts(connect: Duration, io: Duration) {
    let millis = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: the caller guarantees no other thread touches libgit2 while this runs. Both
    // setters cannot fail (libgit2 only returns an error for other options).
    unsafe {
        let _ = git2::opts::set_server_connect_timeout_in_milliseconds(millis(connect));
        let _ = git2::opts::set_server_timeout_in_milliseconds(millis(io));
    }
}

/// Bounds libgit2's process-wide caches (bytes of decoded objects, bytes of mapped pack
/// windows): by default it may keep 256 MiB of the first and map gigabytes of the second, which
/// a worker with many jobs does not need (each clone is used once). The worker passes a share
/// of its memory budget (`worker::memory_budget::libgit2_limits`). Call it once at start-up,
/// before any git thread exists.
///
/// # Safety
/// Like every libgit2 global option, this must not race with other libgit2 calls.
pub unsafe fn limit_memory(cache: usize, mapped: usize) {
    // SAFETY: the caller guarantees no other thread touches libgit2 while this runs; these
    // setters only fail for unknown options.
    unsafe {
        let _ = git2::opts::set_cache_max_size(isize::try_from(cache).unwrap_or(isize::MAX));
        let _ = git2::opts::set_mwindow_mapped_limit(mapped);
    }
}

/// Hands the heap a finished git task freed back to the OS. glibc keeps freed memory in its
/// per-thread arenas, so without this a worker's resident size stays at the peak of its
/// busiest moment, and the memory budget would bound nothing after it.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas; it is safe from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}
