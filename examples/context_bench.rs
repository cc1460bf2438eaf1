//! Times the LLM context selection (`remediator::llm::select_context` over `HEAD`'s tree in the
//! object database, as the worker reads it) of a clone, `N` rounds, and prints the median and
//! what was selected. Used by `bench/worker` to show what the context read costs by itself.
//!
//! Usage: cargo run --release --example context_bench -- N CLONE PACKAGE [MAX_CHARS]

use std::time::Instant;

use remediator::llm::{HeadFiles, VulnerabilityFacts, select_context};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: context_bench N CLONE PACKAGE [MAX_CHARS]";
    let rounds: usize = args.next().ok_or_else(|| anyhow::anyhow!(usage))?.parse()?;
    let clone = args.next().ok_or_else(|| anyhow::anyhow!(usage))?;
    let package = args.next().ok_or_else(|| anyhow::anyhow!(usage))?;
    let max_chars: usize = args.next().map_or(Ok(48_000), |a| a.parse())?;
    anyhow::ensure!(rounds > 0, usage);
    let facts = VulnerabilityFacts {
        id: "BENCH-1".to_owned(),
        aliases: Vec::new(),
        severity: "HIGH".to_owned(),
        summary: String::new(),
        package,
        ecosystem: remediator::ecosystem::Ecosystem::Npm,
        installed_version: "4.17.20".to_owned(),
        fixed_versions: vec!["4.17.21".to_owned()],
        target_version: None,
    };
    let mut samples = Vec::new();
    let mut selected = Vec::new();
    for _ in 0..rounds {
        // A fresh repository each round: the worker opens each clone once.
        let repo = git2::Repository::open(&clone)?;
        let started = Instant::now();
        let head = HeadFiles::open(&repo)?;
        selected = select_context(&head, &facts, max_chars)?;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    samples.sort_by(f64::total_cmp);
    let chars: usize = selected.iter().map(|f| f.content.len()).sum();
    println!(
        "context median_ms={:.1} files={} chars={chars} first={}",
        samples[samples.len() / 2],
        selected.len(),
        selected
            .iter()
            .take(4)
            .map(|f| f.path.as_str())
            .collect::<Vec<_>>()
            .join(",")
    );
    Ok(())
}
