//! A whole remediation world for end-to-end tests: a real git server holding a vulnerable
//! repository, a fake forge API (GitHub unless the options say otherwise), the intake and a
//! worker, all on loopback.

use std::time::Duration;

use remediator::config::{PatcherChoice, Settings};
use remediator::db::operations::OperationEvent;
use remediator::forge::{ForgeKind, ForgeSettings};
use remediator::lifecycle::EventKind;
use remediator::shutdown::Shutdown;
use remediator::worker::context::StepHook;
use serde_json::{Value, json};
use uuid::Uuid;
use wiremock::MockServer;

use super::app::{Catalog, TestApp, test_settings};
use super::git_server::{GitServer, RepoEntry};

pub const FORGE_TOKEN: &str = "ghp_e2eSecretToken0123456789";
pub const LLM_KEY: &str = "sk-fake-llm-key-XYZ";
pub const PACKAGE_JSON: &str = r#"{
  "name": "storefront-web",
  "version": "1.4.0",
  "private": true,
  "scripts": {
    "start": "node server.js"
  },
  "dependencies": {
    "express": "^4.18.2",
    "lodash": "^4.17.20"
  }
}
"#;

pub struct World {
    pub app: TestApp,
    pub git: GitServer,
    /// The fake forge API: GitHub's by default, GitLab's or Gitea's per
    /// [`WorldOptions::forge_kind`] (served under `/api/v4` or `/api/v1` then).
    pub github: MockServer,
    pub repo_url: String,
    pub catalog: Catalog,
    pub worker_shutdown: Shutdown,
    pub worker: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// The in-process worker's git slots (`worker.git_concurrency`), to watch them.
    pub git_slots: Option<std::sync::Arc<tokio::sync::Semaphore>>,
    _token_dir: tempfile::TempDir,
    pub scratch: tempfile::TempDir,
}

pub type SettingsHook = Box<dyn FnOnce(&mut Settings) + Send>;

pub struct WorldOptions {
    pub patcher: PatcherChoice,
    pub llm_base_url: Option<String>,
    pub files: Vec<(&'static str, String)>,
    /// Entries added after `files` to the repository's first commit: executables, symlinks,
    /// submodule (gitlink) entries.
    pub entries: Vec<RepoEntry<'static>>,
    pub start_worker: bool,
    /// Last word on the settings, for tests that need other limits.
    pub adjust: Option<SettingsHook>,
    /// Which forge serves the git server's host; its git user name is what the git server
    /// accepts, so the forge's default credentials are exercised too.
    pub forge_kind: ForgeKind,
    /// The forge token (also the git server's password).
    pub forge_token: &'static str,
    /// The LLM API key, when `llm_base_url` is set.
    pub llm_api_key: &'static str,
}

impl Default for WorldOptions {
    fn default() -> Self {
        WorldOptions {
            patcher: PatcherChoice::Auto,
            llm_base_url: None,
            files: vec![
                ("package.json", PACKAGE_JSON.to_owned()),
                ("README.md", "# storefront\n".to_owned()),
            ],
            entries: Vec::new(),
            start_worker: true,
            adjust: None,
            forge_kind: ForgeKind::Github,
            forge_token: FORGE_TOKEN,
            llm_api_key: LLM_KEY,
        }
    }
}

impl World {
    pub async fn start(options: WorldOptions) -> World {
        let github = MockServer::start().await;
        let api_url = match options.forge_kind {
            ForgeKind::Gitlab => format!("{}/api/v4", github.uri()),
            ForgeKind::Gitea => format!("{}/api/v1", github.uri()),
            ForgeKind::Github | ForgeKind::PlainGit => github.uri(),
        };
        let mut forge = ForgeSettings {
            host: String::new(),
            kind: options.forge_kind,
            api_url: Some(api_url),
            git_username: None,
            token_env: None,
            token_file: None,
            ssh_key_file: None,
        };
        let git = GitServer::start(forge.effective_git_username(), options.forge_token).await;
        let entries: Vec<RepoEntry<'_>> = options
            .files
            .iter()
            .map(|(p, c)| RepoEntry::File(p, c.as_str()))
            .chain(options.entries.iter().copied())
            .collect();
        let repo_url = git.create_repo_with("acme/web", "main", &entries);
        let token_dir = tempfile::tempdir().unwrap();
        let token_file = token_dir.path().join("github-token");
        std::fs::write(&token_file, format!("{}\n", options.forge_token)).unwrap();
        let scratch = tempfile::tempdir().unwrap();

        let mut settings: Settings = test_settings().await;
        settings.git.allow_http = true;
        // The git server, forge and LLM fakes all listen on loopback.
        settings.security.allow_private_networks = true;
        forge.host = git.base_url.trim_start_matches("http://").to_owned();
        forge.token_file = Some(token_file);
        settings.forges = vec![forge];
        settings.worker.patcher = options.patcher;
        settings.worker.heartbeat_secs = 1;
        settings.worker.scratch_dir = Some(scratch.path().to_path_buf());
        if let Some(url) = options.llm_base_url {
            settings.llm.client.base_url = url;
            settings.llm.client.model = "fake-model".into();
            settings.llm.client.api_key =
                Some(secrecy::SecretString::from(options.llm_api_key.to_owned()));
        }
        if let Some(adjust) = options.adjust {
            adjust(&mut settings);
        }
        let app = TestApp::spawn_with(settings).await;
        let catalog = super::app::seed_catalog(&app, &repo_url).await;
        let mut world = World {
            app,
            git,
            github,
            repo_url,
            catalog,
            worker_shutdown: Shutdown::new(),
            worker: None,
            git_slots: None,
            _token_dir: token_dir,
            scratch,
        };
        if options.start_worker {
            world.start_worker();
        }
        world
    }

    /// Starts the worker with a watch on its clones: as `step` starts (after the lock tools
    /// ran, for `Commit`), every file named one of `markers` anywhere under the scratch
    /// directory, where the clones are, is recorded. A lifecycle script that ran would have
    /// left its marker there, in the clone, before the job removes it.
    pub fn start_worker_watching(
        &mut self,
        step: remediator::lifecycle::Step,
        markers: &'static [&'static str],
    ) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
        let found = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (seen, scratch) = (found.clone(), self.scratch.path().to_path_buf());
        let hook: StepHook = std::sync::Arc::new(move |_, at| {
            if at == step {
                let mut hits = Vec::new();
                find_named(&scratch, markers, 0, &mut hits);
                seen.lock().unwrap().extend(hits);
            }
        });
        self.start_worker_with(Some(hook));
        found
    }

    pub fn start_worker(&mut self) {
        self.start_worker_with(None);
    }

    /// Starts the in-process worker; `before_step` is called as each step starts (tests
    /// inject faults with it).
    pub fn start_worker_with(&mut self, before_step: Option<StepHook>) {
        let mut runner =
            remediator::commands::worker::build_runner(&self.app.settings, self.app.pool.clone())
                .expect("build the worker");
        std::sync::Arc::get_mut(&mut runner.pipeline)
            .expect("a new runner's pipeline is not shared")
            .before_step = before_step;
        self.git_slots = Some(runner.pipeline.git_budget.semaphore().clone());
        self.worker = Some(tokio::spawn(runner.run(self.worker_shutdown.clone())));
    }

    /// Imports one more AFFECTED finding of the world's project; returns its assessment.
    pub async fn add_affected(
        &self,
        package: &str,
        ecosystem: &str,
        vulnerability_id: &str,
        installed: &str,
        fixed: &str,
    ) -> Uuid {
        self.add_affected_fixed_in(package, ecosystem, vulnerability_id, installed, &[fixed])
            .await
    }

    /// [`Self::add_affected`] for an advisory fixed in several release lines.
    pub async fn add_affected_fixed_in(
        &self,
        package: &str,
        ecosystem: &str,
        vulnerability_id: &str,
        installed: &str,
        fixed: &[&str],
    ) -> Uuid {
        let (finding, assessment) = (Uuid::new_v4(), Uuid::new_v4());
        let file = json!({
            "findings": [{"id": finding, "project_id": self.catalog.project,
                "vulnerability_id": vulnerability_id, "severity": "HIGH",
                "package_name": package, "ecosystem": ecosystem,
                "installed_version": installed, "fixed_versions": fixed}],
            "assessments": [{"id": assessment, "finding_id": finding, "status": "ASSESSMENT_STATUS_AFFECTED"}]});
        let parsed = remediator::import::parse(
            &file.to_string(),
            &super::app::import_rules(&self.app.settings),
        )
        .unwrap();
        remediator::import::import(&self.app.pool, parsed)
            .await
            .unwrap();
        assessment
    }

    /// The operation's history, oldest first.
    pub async fn history(&self, id: Uuid) -> Vec<OperationEvent> {
        let mut conn = self.app.pool.get().await.unwrap();
        remediator::db::operations::history(&mut conn, id.into())
            .await
            .unwrap()
    }

    /// Waits until a note of the operation's history contains `text`; fails after `timeout`.
    pub async fn wait_for_note(&self, id: Uuid, text: &str, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let history = self.history(id).await;
            if history.iter().any(|event| {
                event.kind == EventKind::Note
                    && event.message.as_deref().is_some_and(|m| m.contains(text))
            }) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no note containing {text:?}: {history:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn request(&self, assessment: Uuid) -> Uuid {
        let token = self.app.full_token(self.catalog.org);
        let (status, body) = self
            .app
            .post_remediation(
                Some(&token),
                &json!({"assessment_id": assessment}).to_string(),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["operation_id"].as_str().unwrap().parse().unwrap()
    }

    pub async fn operation(&self, id: Uuid) -> Value {
        let token = self.app.full_token(self.catalog.org);
        let (status, body) = self
            .app
            .get_json(Some(&token), &format!("/v1/operations/{id}"))
            .await;
        assert_eq!(status, 200, "{body}");
        body["operation"].clone()
    }

    /// Polls the API, as a client would, until the operation ends.
    pub async fn wait_for_end(&self, id: Uuid, timeout: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let op = self.operation(id).await;
            let status = op["status"].as_str().unwrap_or_default();
            if !matches!(
                status,
                "ASYNC_OPERATION_STATUS_PENDING" | "ASYNC_OPERATION_STATUS_RUNNING"
            ) {
                return op;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "operation did not end: {op}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The branch's file on the git server, or None when the branch does not exist.
    pub fn file_on_branch(&self, branch: &str, path: &str) -> Option<String> {
        let refs = self
            .git
            .git("acme/web", &["for-each-ref", "--format=%(refname)"]);
        if !refs.lines().any(|r| r == format!("refs/heads/{branch}")) {
            return None;
        }
        Some(
            self.git
                .git("acme/web", &["show", &format!("{branch}:{path}")]),
        )
    }

    pub fn branches(&self) -> Vec<String> {
        self.git
            .git(
                "acme/web",
                &["for-each-ref", "--format=%(refname:short)", "refs/heads"],
            )
            .lines()
            .map(str::to_owned)
            .collect()
    }

    pub async fn stop(self) {
        self.worker_shutdown.trigger();
        if let Some(worker) = self.worker {
            let _ = tokio::time::timeout(Duration::from_secs(20), worker).await;
        }
        self.app.stop().await;
    }
}

/// Every path under `dir` (not following links) whose file name is one of `names`.
fn find_named(dir: &std::path::Path, names: &[&str], depth: usize, found: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if names.contains(&name.as_str()) {
            found.push(entry.path().display().to_string());
        }
        if depth < 12 && entry.file_type().is_ok_and(|t| t.is_dir()) {
            find_named(&entry.path(), names, depth + 1, found);
        }
    }
}
