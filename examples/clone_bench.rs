//! Times the product's clone (`remediator::git::clone_default_branch`: shallow, single branch)
//! of each repository URL given, `N` rounds taking the URLs in turn so a noisy machine weighs
//! on all of them alike, and prints each URL's median. Used by `bench/history`.
//!
//! Usage: cargo run --release --example clone_bench -- N BRANCH URL...

use std::time::Instant;

use remediator::git::{GitAuth, clone_default_branch};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: clone_bench N BRANCH URL...";
    let rounds: usize = args.next().ok_or_else(|| anyhow::anyhow!(usage))?.parse()?;
    let branch = args.next().ok_or_else(|| anyhow::anyhow!(usage))?;
    let urls: Vec<String> = args.collect();
    anyhow::ensure!(!urls.is_empty() && rounds > 0, usage);
    let auth = GitAuth {
        username: "git".to_owned(),
        token: None,
        ssh_key_file: None,
    };
    let scratch = tempfile::tempdir()?;
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); urls.len()];
    for round in 0..rounds {
        for (index, url) in urls.iter().enumerate() {
            let dest = scratch.path().join(format!("{round}-{index}"));
            let started = Instant::now();
            let repo = clone_default_branch(url, &branch, &dest, &auth)
                .map_err(|e| anyhow::anyhow!("cloning {url}: {e}"))?;
            times[index].push(started.elapsed().as_secs_f64() * 1000.0);
            anyhow::ensure!(repo.is_shallow(), "{url} was not cloned shallow");
            drop(repo);
            std::fs::remove_dir_all(&dest)?;
        }
    }
    for (url, mut samples) in urls.iter().zip(times) {
        samples.sort_by(f64::total_cmp);
        let median = samples[samples.len() / 2];
        let all: Vec<String> = samples.iter().map(|t| format!("{t:.0}")).collect();
        println!("{url} median_ms={median:.1} samples_ms={}", all.join(","));
    }
    Ok(())
}
