//! For `bench/lockfile`: one lock update as the worker runs it (through
//! `remediator::sandbox::Sandbox`, bubblewrap, the egress proxy) and the same command run bare,
//! alternating, `ROUNDS` times each on a fresh copy of a project. Prints one
//! `ROUND sandbox_ms bare_ms` line per round.
//!
//! Usage: lockfile_bench ROUNDS PROJECT_DIR PROGRAM [ARGS...]
//! Environment: `BENCH_TOOL_ENV` (`K=V;K=V`, the tool's environment; a value under `/tmp/` is
//! a fresh per-round directory in the bare run), `BENCH_READ_ONLY` (`:`-separated paths the
//! sandboxed tool may read), `BENCH_FILES_AT` (`HOST=INSIDE;...`, files placed for the tool),
//! `BENCH_DOWNLOAD_CACHE` (a directory: the sandboxed npm install goes through the test step's
//! download cache there, seeded before and taken back after, both inside the timing),
//! `BENCH_OFFLINE` (set: the sandboxed run has no network, as the test step runs the tests).

use std::path::{Path, PathBuf};
use std::time::Instant;

use remediator::sandbox::{Sandbox, SandboxMode, SandboxSettings, ToolRun};
use remediator::verify::download_cache::{self, DownloadCache};

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

fn pairs(var: &str, separator: char) -> Vec<(String, String)> {
    std::env::var(var)
        .unwrap_or_default()
        .split(';')
        .filter_map(|pair| pair.split_once(separator))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// A path the sandbox sees under its fresh `/tmp`, as a per-round directory for the bare run.
fn bare_path(value: &str, home: &Path) -> String {
    match value.strip_prefix("/tmp/") {
        Some(rest) => home.join(rest).to_string_lossy().into_owned(),
        None => value.to_owned(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, rounds, project, program, tool_args @ ..] = args.as_slice() else {
        anyhow::bail!("usage: lockfile_bench ROUNDS PROJECT_DIR PROGRAM [ARGS...]");
    };
    let rounds: usize = rounds.parse()?;
    let env = pairs("BENCH_TOOL_ENV", '=');
    let files_at: Vec<(PathBuf, String)> = pairs("BENCH_FILES_AT", '=')
        .into_iter()
        .map(|(host, inside)| (PathBuf::from(host), inside))
        .collect();
    let read_only: Vec<PathBuf> = std::env::var("BENCH_READ_ONLY")
        .unwrap_or_default()
        .split(':')
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .collect();
    let sandbox = Sandbox::new(
        SandboxSettings {
            mode: SandboxMode::Bubblewrap,
            bwrap: "bwrap".into(),
            timeout_secs: 300,
            cpu_secs: 300,
            memory_mb: 4096,
            max_output_bytes: 8192,
            allowed_hosts: Vec::new(),
            ca_bundle: None,
        },
        // The benchmark's local registry (`BENCH_REGISTRY`, a URL on loopback), by host and port.
        std::env::var("BENCH_REGISTRY")
            .ok()
            .and_then(|url| remediator::sandbox::reach::Endpoint::of_url(&url))
            .into_iter()
            .collect(),
    );
    sandbox.check()?;
    let download_cache = std::env::var("BENCH_DOWNLOAD_CACHE")
        .ok()
        .map(|dir| DownloadCache::new(PathBuf::from(dir)));
    let scratch = tempfile::tempdir()?;
    for round in 0..rounds {
        let boxed = scratch.path().join(format!("sandbox-{round}"));
        copy_tree(Path::new(project), &boxed)?;
        let mut run = ToolRun {
            program: program.clone(),
            args: tool_args.to_vec(),
            work_tree: boxed,
            dir: String::new(),
            env: env.clone(),
            network: std::env::var_os("BENCH_OFFLINE").is_none(),
            secrets: vec![],
            read_only: read_only.clone(),
            files_at: files_at.clone(),
        };
        let started = Instant::now();
        let cache = download_cache.as_ref().map(|cache| {
            let lock = std::fs::read_to_string(run.work_tree.join("package-lock.json"))?;
            let run_cache = run.work_tree.join(download_cache::RUN_DIR);
            let used = cache.seed(&download_cache::NPM, &lock, &run_cache)?;
            let inside = sandbox.clone_path(&run.work_tree, download_cache::RUN_DIR);
            run.env.retain(|(key, _)| key != "npm_config_cache");
            run.env.push(("npm_config_cache".to_owned(), inside));
            anyhow::Ok((cache, lock, run_cache, used))
        });
        let cache = cache.transpose()?;
        let ran = sandbox.run(&run, "see bench/lockfile").await?;
        if let Some((cache, lock, run_cache, used)) = cache {
            let used = cache.harvest(&download_cache::NPM, &lock, &run_cache, used)?;
            eprintln!("download cache: {used:?}");
        }
        let sandboxed = started.elapsed().as_millis();
        anyhow::ensure!(ran.success(), "sandboxed {program} failed: {}", ran.output);

        let bare = scratch.path().join(format!("bare-{round}"));
        copy_tree(Path::new(project), &bare)?;
        let home = scratch.path().join(format!("bare-home-{round}"));
        std::fs::create_dir_all(home.join("home"))?;
        for (host, inside) in &files_at {
            let target = PathBuf::from(bare_path(inside, &home));
            if let Some(dir) = target.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::copy(host, target)?;
        }
        let started = Instant::now();
        let status = tokio::process::Command::new(program)
            .args(tool_args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", home.join("home"))
            .envs(env.iter().map(|(k, v)| (k, bare_path(v, &home))))
            .current_dir(&bare)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await?;
        let bare_ms = started.elapsed().as_millis();
        anyhow::ensure!(status.success(), "bare {program} failed");
        println!("ROUND {sandboxed} {bare_ms}");
    }
    Ok(())
}
