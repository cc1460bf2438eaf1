//! For `bench/lockfile`: the npm lock update as the worker runs it (through
//! `remediator::sandbox::Sandbox`, bubblewrap) and the same command run bare, alternating,
//! `ROUNDS` times each on a fresh copy of a project. Prints one `ROUND sandbox_ms bare_ms` line
//! per round. Usage: lockfile_bench ROUNDS PROJECT_DIR REGISTRY_URL

use std::path::Path;
use std::time::Instant;

use remediator::sandbox::{Sandbox, SandboxMode, SandboxSettings, ToolRun};

fn copy_project(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, rounds, project, registry] = args.as_slice() else {
        anyhow::bail!("usage: lockfile_bench ROUNDS PROJECT_DIR REGISTRY_URL");
    };
    let rounds: usize = rounds.parse()?;
    let sandbox = Sandbox::new(
        SandboxSettings {
            mode: SandboxMode::Bubblewrap,
            bwrap: "bwrap".into(),
            timeout_secs: 300,
            cpu_secs: 300,
            memory_mb: 4096,
            max_output_bytes: 8192,
            allowed_hosts: Vec::new(),
        },
        remediator::egress::EgressPolicy::allow_all(),
    );
    sandbox.check()?;
    let npm_args: Vec<String> = [
        "install",
        "--package-lock-only",
        "--ignore-scripts",
        "--no-audit",
        "--no-fund",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--registry={registry}")])
    .collect();
    let scratch = tempfile::tempdir()?;
    for round in 0..rounds {
        let boxed = scratch.path().join(format!("sandbox-{round}"));
        copy_project(Path::new(project), &boxed)?;
        let run = ToolRun {
            program: "npm".into(),
            args: npm_args.clone(),
            work_tree: boxed,
            dir: String::new(),
            env: vec![
                ("npm_config_cache".into(), "/tmp/npm-cache".into()),
                ("npm_config_update_notifier".into(), "false".into()),
            ],
            network: true,
            secrets: vec![],
            read_only: vec![],
            files_at: Vec::new(),
        };
        let started = Instant::now();
        let ran = sandbox.run(&run, "apt-get install npm").await?;
        let sandboxed = started.elapsed().as_millis();
        anyhow::ensure!(ran.success(), "sandboxed npm failed: {}", ran.output);

        let bare = scratch.path().join(format!("bare-{round}"));
        copy_project(Path::new(project), &bare)?;
        let cache = scratch.path().join(format!("cache-{round}"));
        let started = Instant::now();
        let status = tokio::process::Command::new("npm")
            .args(&npm_args)
            .env("npm_config_cache", &cache)
            .env("npm_config_update_notifier", "false")
            .current_dir(&bare)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await?;
        let bare_ms = started.elapsed().as_millis();
        anyhow::ensure!(status.success(), "bare npm failed");
        println!("ROUND {sandboxed} {bare_ms}");
    }
    Ok(())
}
