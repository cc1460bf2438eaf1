//! Real `remediator worker` processes for fault tests: configured like the in-process world
//! (same database, queue prefix, forge and LLM), started, killed with SIGKILL or stopped with
//! SIGTERM.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use secrecy::ExposeSecret;

use super::remediation::{FORGE_TOKEN, World};

pub struct WorkerConfig {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl WorkerConfig {
    /// Writes the world's forge (and LLM, when it has one) into a config file.
    pub fn for_world(world: &World) -> WorkerConfig {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, FORGE_TOKEN).unwrap();
        let settings = &world.app.settings;
        let mut text = format!(
            "[[forges]]\nhost = \"{}\"\nkind = \"github\"\napi_url = \"{}\"\ntoken_file = \"{}\"\n",
            world.git.base_url.trim_start_matches("http://"),
            world.github.uri(),
            token_file.display()
        );
        if !settings.llm.client.base_url.is_empty() {
            text = format!(
                "[llm]\nbase_url = \"{}\"\nmodel = \"{}\"\n\n{text}",
                settings.llm.client.base_url, settings.llm.client.model
            );
        }
        let config = dir.path().join("worker.toml");
        std::fs::write(&config, text).unwrap();
        WorkerConfig { dir, config }
    }

    pub fn spawn(
        &self,
        world: &World,
        concurrency: u16,
        extra_env: &[(&str, &str)],
    ) -> tokio::process::Child {
        let settings = &world.app.settings;
        let patcher = format!("{:?}", settings.worker.patcher).to_lowercase();
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_remediator"));
        command
            .args([
                "--config",
                self.config.to_str().unwrap(),
                "worker",
                "--concurrency",
                &concurrency.to_string(),
            ])
            .env(
                "REMEDIATOR__DATABASE__URL",
                settings.database.url.expose_secret(),
            )
            .env("REMEDIATOR__DATABASE__POOL_SIZE", "4")
            .env("REMEDIATOR__AMQP__URL", settings.amqp.url.expose_secret())
            .env("REMEDIATOR__AMQP__PREFIX", &settings.amqp.prefix)
            .env("REMEDIATOR__AMQP__RETRY_DELAYS_SECS", "1,2")
            .env(
                "REMEDIATOR__AMQP__DELIVERY_LIMIT",
                settings.amqp.delivery_limit.to_string(),
            )
            .env(
                "REMEDIATOR__AMQP__MAX_ATTEMPTS",
                settings.amqp.max_attempts.to_string(),
            )
            .env("REMEDIATOR__WORKER__HEARTBEAT_SECS", "1")
            .env("REMEDIATOR__WORKER__PATCHER", patcher)
            .env("REMEDIATOR__WORKER__SCRATCH_DIR", world.scratch.path())
            .env("REMEDIATOR__WORKER__METRICS_LISTEN", "127.0.0.1:0")
            .env("REMEDIATOR__RESCUER__INTERVAL_SECS", "1")
            .env("REMEDIATOR__RESCUER__STALE_AFTER_SECS", "6")
            .env("REMEDIATOR__GIT__ALLOW_HTTP", "true")
            .env("REMEDIATOR__SECURITY__ALLOW_PRIVATE_NETWORKS", "true")
            // Fault batches open more PRs in one repository than the default cap.
            .env("REMEDIATOR__WORKER__MAX_OPEN_PRS_PER_REPOSITORY", "0")
            .env("REMEDIATOR__METRICS__SAMPLE_SECS", "1")
            .stdout(Stdio::null())
            .stderr(if std::env::var("FAULT_TEST_LOGS").is_ok() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true);
        if let Some(key) = &settings.llm.client.api_key {
            command.env("REMEDIATOR__LLM__API_KEY", key.expose_secret());
        }
        for (k, v) in extra_env {
            command.env(k, v);
        }
        let _ = &self.dir;
        command.spawn().expect("start a worker process")
    }
}

/// SIGTERM, as an orchestrator sends it.
pub fn terminate(child: &tokio::process::Child) {
    let pid = child.id().expect("running child");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

pub async fn wait_exit(
    child: &mut tokio::process::Child,
    within: Duration,
) -> std::process::ExitStatus {
    tokio::time::timeout(within, child.wait())
        .await
        .expect("the worker exited in time")
        .expect("wait for the worker")
}
