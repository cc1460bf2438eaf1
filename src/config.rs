//! Settings: the built-in `config/default.toml`, an optional file, then `REMEDIATOR__*`
//! environment variables (plus the conventional `DATABASE_URL` and `AMQP_URL`).
//!
//! Secrets are only taken from the environment or from secret files; a config file that holds
//! one is refused, so a secret never ends up in a repository or a ConfigMap by accident.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use secrecy::SecretString;
use serde::Deserialize;

use crate::egress::EgressPolicy;
use crate::forge::{ForgeSettings, UrlPolicy};
use crate::llm::LlmSettings;
use crate::patch::PolicySettings;

/// The documented defaults, compiled in so the binary needs no file to start.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Keys that hold secrets: accepted from the environment only, never from a file.
const SECRET_KEYS: &[&str] = &[
    "auth.jwt_secret",
    "llm.api_key",
    "webhooks.github_secret",
    "webhooks.gitlab_secret",
    "webhooks.gitea_secret",
];

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub amqp: AmqpSettings,
    pub intake: IntakeSettings,
    pub relay: RelaySettings,
    pub rescuer: RescuerSettings,
    pub reconciler: ReconcilerSettings,
    pub webhooks: WebhookSettings,
    pub metrics: MetricsSettings,
    pub auth: AuthSettings,
    pub worker: WorkerSettings,
    pub git: GitSettings,
    pub llm: LlmSection,
    pub policy: PolicySettings,
    pub security: SecuritySettings,
    pub sandbox: crate::sandbox::SandboxSettings,
    pub lockfiles: crate::lockfile::LockfileSettings,
    /// The test step: the project's own tests on the fixed tree and on main.
    #[serde(default)]
    pub verify: crate::verify::VerifySettings,
    pub console: ConsoleSettings,
    /// Which forge and credentials serve a repository, by host.
    #[serde(default)]
    pub forges: Vec<ForgeSettings>,
}

/// The LLM client settings plus where its key comes from.
#[derive(Debug, Clone, Deserialize)]
pub struct LlmSection {
    #[serde(flatten)]
    pub client: LlmSettings,
    #[serde(default, deserialize_with = "empty_path_is_none")]
    pub api_key_file: Option<PathBuf>,
}

impl LlmSection {
    /// An LLM is configured when it has an endpoint.
    pub fn enabled(&self) -> bool {
        !self.client.base_url.trim().is_empty()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: SecretString,
    pub pool_size: usize,
    pub acquire_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AmqpSettings {
    /// The URL may carry the broker password, so it is treated as a secret.
    pub url: SecretString,
    pub prefix: String,
    pub delivery_limit: u32,
    pub retry_delays_secs: Vec<u64>,
    pub max_attempts: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct IntakeSettings {
    pub listen: String,
    pub max_body_bytes: usize,
    /// Names and values of all request headers together.
    pub max_header_bytes: usize,
    /// From the first byte of a request to the end of its headers.
    pub header_read_timeout_secs: u64,
    /// From the end of a request's headers to the end of its body.
    pub body_read_timeout_secs: u64,
    /// Silence on a connection that is not serving a request, before it is closed.
    pub idle_timeout_secs: u64,
    /// Connections served at once by one process; more are answered 503 and closed.
    pub max_connections: usize,
    pub shutdown_grace_secs: u64,
    /// Remediation triggers and cancels per organisation per minute; 0 disables the limit.
    pub rate_limit_per_minute: u32,
}

/// The operations console served by `remediator intake` at `/console/`.
#[derive(Debug, Clone, Deserialize)]
pub struct ConsoleSettings {
    pub enabled: bool,
    /// The scope that sees every organisation and may cancel, replay and purge.
    pub admin_scope: String,
    /// `auto`: the session cookie is `Secure` unless the intake listens on loopback;
    /// `always`: `Secure` everywhere (behind a TLS proxy on the same host).
    pub secure_cookie: SecureCookie,
    /// How often open pages refresh their live parts, in milliseconds.
    pub refresh_ms: u64,
    /// Most dead letters one replay at a chosen rate may take (the request waits for them).
    pub max_replay_per_request: usize,
}

/// `console.secure_cookie`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecureCookie {
    Auto,
    Always,
}

/// Outbound network policy (see `crate::egress`).
#[derive(Debug, Clone, Deserialize)]
pub struct SecuritySettings {
    /// Lets forge API, LLM and git connections reach loopback, link-local, private, CGNAT
    /// and other non-public addresses. Off by default: such a host is refused.
    pub allow_private_networks: bool,
}

impl SecuritySettings {
    pub fn egress(&self) -> EgressPolicy {
        EgressPolicy::new(self.allow_private_networks)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct RelaySettings {
    pub enabled: bool,
    pub poll_interval_ms: u64,
    pub batch_size: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RescuerSettings {
    pub enabled: bool,
    pub interval_secs: u64,
    pub stale_after_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReconcilerSettings {
    pub enabled: bool,
    pub interval_secs: u64,
    pub max_requests_per_tick: u32,
}

/// `[webhooks]`: one secret per forge, from the environment or a file.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookSettings {
    #[serde(default)]
    pub github_secret: Option<SecretString>,
    #[serde(default, deserialize_with = "empty_path_is_none")]
    pub github_secret_file: Option<PathBuf>,
    #[serde(default)]
    pub gitlab_secret: Option<SecretString>,
    #[serde(default, deserialize_with = "empty_path_is_none")]
    pub gitlab_secret_file: Option<PathBuf>,
    #[serde(default)]
    pub gitea_secret: Option<SecretString>,
    #[serde(default, deserialize_with = "empty_path_is_none")]
    pub gitea_secret_file: Option<PathBuf>,
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MetricsSettings {
    pub sample_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    pub algorithm: String,
    #[serde(default)]
    pub jwt_secret: Option<SecretString>,
    #[serde(default, deserialize_with = "empty_path_is_none")]
    pub jwt_secret_file: Option<PathBuf>,
    pub org_claim: String,
    pub scope_claim: String,
    pub leeway_secs: u64,
    pub issuer: String,
    pub audience: String,
    /// RS256/ES256 public keys (PEM); each answers to the `kid` of its file stem.
    #[serde(default)]
    pub public_key_files: Vec<PathBuf>,
    /// RS256/ES256 keys from the identity provider's JWKS document; empty: none.
    #[serde(default)]
    pub jwks_url: String,
    /// Fewest seconds between two fetches of the JWKS (a token naming an unknown `kid`
    /// triggers one, so a flood of made-up kids cannot turn into a flood of fetches).
    pub jwks_min_refresh_secs: u64,
    /// Age after which the cached JWKS is fetched again, so keys the provider revoked stop
    /// being accepted.
    pub jwks_max_age_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PatcherChoice {
    Auto,
    Llm,
    Bump,
}

/// A switch that is on unless the configuration turns it off.
fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
pub struct WorkerSettings {
    pub concurrency: u16,
    /// Log, at start, where each lock tool was found and its version (run in the sandbox).
    #[serde(default = "yes")]
    pub check_tools_at_start: bool,
    #[serde(default, deserialize_with = "empty_path_is_none")]
    pub scratch_dir: Option<PathBuf>,
    pub patcher: PatcherChoice,
    pub job_timeout_secs: u64,
    pub heartbeat_secs: u64,
    pub pr_labels: Vec<String>,
    pub draft_below_confidence: f64,
    /// Clones and pushes at once, one slot each; 0: as `memory_budget_mib` allows.
    #[serde(default)]
    pub git_concurrency: u16,
    /// The worker's memory budget, which sizes its git slots and libgit2's caches.
    pub memory_budget_mib: u32,
    pub metrics_listen: String,
    /// Open remediation pull requests per repository before new ones are refused; 0: no cap.
    pub max_open_prs_per_repository: u32,
    /// What a job does when the lock file still resolves a vulnerable copy after the change.
    pub require_verified_fix: VerifiedFix,
    /// A merged remediation pull request also makes the assessments it covers FIXED.
    pub mark_fixed_on_merge: bool,
    /// What one pull request carries: one package's fix, or every pending fix of an ecosystem
    /// in the repository.
    pub group: Grouping,
}

/// `worker.group`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Grouping {
    /// One pull request per package fix (every advisory of the package).
    Package,
    /// One pull request per repository and ecosystem, carrying every pending version fix.
    Repository,
}

/// `worker.require_verified_fix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifiedFix {
    /// Open the pull request as a draft that says which copy remains.
    Draft,
    /// Fail the job, naming the copy.
    Fail,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GitSettings {
    pub author_name: String,
    pub author_email: String,
    pub allow_http: bool,
    pub allow_file: bool,
    pub http_timeout_secs: u64,
}

impl GitSettings {
    pub fn url_policy(&self) -> UrlPolicy {
        UrlPolicy {
            allow_http: self.allow_http,
            allow_file: self.allow_file,
        }
    }
}

impl Settings {
    /// Loads the layers from the real process environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        Self::load_with_env(file, std::env::vars())
    }

    /// Only the built-in defaults: the starting point of tests and `remediator demo`.
    pub fn defaults() -> anyhow::Result<Self> {
        Self::load_with_env(None, std::iter::empty())
    }

    /// Loads the layers with an explicit environment, so tests need not mutate the process's.
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Self> {
        let env: std::collections::HashMap<String, String> = env.into_iter().collect();
        let mut files = config::Config::builder().add_source(config::File::from_str(
            DEFAULT_TOML,
            config::FileFormat::Toml,
        ));
        if let Some(path) = file {
            files = files.add_source(config::File::from(path).required(true));
        }
        let from_files = files
            .build()
            .with_context(|| "reading configuration files")?;
        for key in SECRET_KEYS {
            if from_files.get_string(key).is_ok() {
                bail!(
                    "configuration files must not hold the secret `{key}`; set it in the \
                     environment (REMEDIATOR__{}) or use a `_file` key",
                    key.replace('.', "__").to_uppercase()
                );
            }
        }

        let mut builder = config::Config::builder().add_source(from_files).add_source(
            config::Environment::with_prefix("REMEDIATOR")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("amqp.retry_delays_secs")
                .with_list_parse_key("worker.pr_labels")
                .with_list_parse_key("policy.deny_globs")
                .with_list_parse_key("auth.public_key_files")
                .source(Some(env.clone().into_iter().collect())),
        );
        for (conventional, key) in [("DATABASE_URL", "database.url"), ("AMQP_URL", "amqp.url")] {
            let ours = format!("REMEDIATOR__{}", key.replace('.', "__").to_uppercase());
            if !env.contains_key(&ours)
                && let Some(value) = env.get(conventional)
            {
                builder = builder.set_override(key, value.as_str())?;
            }
        }
        let mut settings: Settings = builder
            .build()?
            .try_deserialize()
            .with_context(|| "invalid configuration")?;
        if let Some(key) = env
            .get("REMEDIATOR__LLM__API_KEY")
            .filter(|k| !k.is_empty())
        {
            settings.llm.client.api_key = Some(SecretString::from(key.clone()));
        }
        settings.resolve_secret_files()?;
        Ok(settings)
    }

    fn resolve_secret_files(&mut self) -> anyhow::Result<()> {
        if self.auth.jwt_secret.is_none()
            && let Some(path) = &self.auth.jwt_secret_file
        {
            self.auth.jwt_secret = Some(read_secret_file(path)?);
        }
        if self.llm.client.api_key.is_none()
            && let Some(path) = &self.llm.api_key_file
        {
            self.llm.client.api_key = Some(read_secret_file(path)?);
        }
        let hooks = &mut self.webhooks;
        for (secret, file) in [
            (&mut hooks.github_secret, &hooks.github_secret_file),
            (&mut hooks.gitlab_secret, &hooks.gitlab_secret_file),
            (&mut hooks.gitea_secret, &hooks.gitea_secret_file),
        ] {
            // An empty variable is no secret: the endpoint then refuses every delivery.
            if secret
                .as_ref()
                .is_some_and(|s| secrecy::ExposeSecret::expose_secret(s).is_empty())
            {
                *secret = None;
            }
            if secret.is_none()
                && let Some(path) = file
            {
                *secret = Some(read_secret_file(path)?);
            }
        }
        Ok(())
    }
}

/// Reads a secret file (Kubernetes and Docker secrets end with a newline: trimmed).
pub fn read_secret_file(path: &Path) -> anyhow::Result<SecretString> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading secret file {}", path.display()))?;
    let trimmed = text.trim_end_matches(['\n', '\r']);
    if trimmed.is_empty() {
        bail!("secret file {} is empty", path.display());
    }
    Ok(SecretString::from(trimmed.to_owned()))
}

pub(crate) fn empty_path_is_none<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<PathBuf>, D::Error> {
    let raw: Option<String> = Option::deserialize(d)?;
    Ok(raw.filter(|s| !s.is_empty()).map(PathBuf::from))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_parse() {
        let s = Settings::defaults().unwrap();
        assert_eq!(s.amqp.prefix, "remediator");
        assert_eq!(s.worker.patcher, PatcherChoice::Auto);
        assert!(s.auth.jwt_secret.is_none());
        assert_eq!(s.amqp.retry_delays_secs, vec![10, 60, 300]);
        assert!(!s.llm.enabled());
        assert_eq!(s.llm.client.max_rounds, 3);
        assert!(s.forges.is_empty());
        assert_eq!(s.policy, PolicySettings::default());
        assert_eq!(s.auth.algorithm, "HS256");
        assert!(s.auth.public_key_files.is_empty() && s.auth.jwks_url.is_empty());
        assert_eq!(s.auth.jwks_min_refresh_secs, 30);
        assert!(!s.security.allow_private_networks);
        assert!(!s.security.egress().allows_private_networks());
        assert_eq!(s.intake.rate_limit_per_minute, 120);
        assert_eq!(s.worker.max_open_prs_per_repository, 10);
        assert!(s.console.enabled);
        assert_eq!(s.console.admin_scope, "ops:admin");
        assert_eq!(s.console.secure_cookie, SecureCookie::Auto);
    }

    #[test]
    fn public_key_files_come_from_the_environment_as_a_list() {
        let s = Settings::load_with_env(
            None,
            env(&[
                ("REMEDIATOR__AUTH__ALGORITHM", "ES256"),
                (
                    "REMEDIATOR__AUTH__PUBLIC_KEY_FILES",
                    "/keys/a.pem,/keys/b.pem",
                ),
                ("REMEDIATOR__AUTH__JWKS_MIN_REFRESH_SECS", "5"),
            ]),
        )
        .unwrap();
        assert_eq!(s.auth.algorithm, "ES256");
        assert_eq!(
            s.auth.public_key_files,
            vec![PathBuf::from("/keys/a.pem"), PathBuf::from("/keys/b.pem")]
        );
        assert_eq!(s.auth.jwks_min_refresh_secs, 5);
    }

    #[test]
    fn environment_overrides_every_layer() {
        let s = Settings::load_with_env(
            None,
            env(&[
                ("REMEDIATOR__WORKER__CONCURRENCY", "7"),
                ("REMEDIATOR__AUTH__JWT_SECRET", "s3cr3t-value"),
                ("REMEDIATOR__WORKER__PR_LABELS", "a,b"),
                ("DATABASE_URL", "postgres://x@db/y"),
                ("AMQP_URL", "amqp://conventional"),
                ("REMEDIATOR__AMQP__URL", "amqp://ours"),
                ("REMEDIATOR__LLM__BASE_URL", "http://127.0.0.1:11434/v1"),
                ("REMEDIATOR__LLM__API_KEY", "sk-test-key"),
                ("REMEDIATOR__LLM__MAX_ROUNDS", "5"),
            ]),
        )
        .unwrap();
        assert_eq!(s.worker.concurrency, 7);
        assert_eq!(s.worker.pr_labels, vec!["a", "b"]);
        assert_eq!(s.auth.jwt_secret.unwrap().expose_secret(), "s3cr3t-value");
        assert_eq!(s.database.url.expose_secret(), "postgres://x@db/y");
        assert_eq!(s.amqp.url.expose_secret(), "amqp://ours");
        assert!(s.llm.enabled());
        assert_eq!(s.llm.client.max_rounds, 5);
        assert_eq!(s.llm.client.api_key.unwrap().expose_secret(), "sk-test-key");
    }

    /// A secret written into a config file (`toml`, in `dir`) is refused, and the error names
    /// the environment variable `instead` to use.
    fn assert_refused_in_a_config_file(dir: &std::path::Path, toml: &str, instead: &str) {
        let file = dir.join("bad.toml");
        std::fs::write(&file, toml).unwrap();
        let err = Settings::load_with_env(Some(&file), env(&[])).unwrap_err();
        assert!(err.to_string().contains(instead), "{err}");
    }

    #[test]
    fn webhook_secrets_come_from_the_environment_or_files_never_config_files() {
        let dir = tempfile::tempdir().unwrap();
        assert_refused_in_a_config_file(
            dir.path(),
            "[webhooks]\ngithub_secret = \"oops\"\n",
            "REMEDIATOR__WEBHOOKS__GITHUB_SECRET",
        );

        let gitea = dir.path().join("gitea-secret");
        std::fs::write(&gitea, "from-a-file\n").unwrap();
        let s = Settings::load_with_env(
            None,
            env(&[
                ("REMEDIATOR__WEBHOOKS__GITHUB_SECRET", "from-the-env"),
                ("REMEDIATOR__WEBHOOKS__GITLAB_SECRET", ""),
                (
                    "REMEDIATOR__WEBHOOKS__GITEA_SECRET_FILE",
                    gitea.to_str().unwrap(),
                ),
            ]),
        )
        .unwrap();
        let secret = |s: &Option<SecretString>| s.as_ref().map(|s| s.expose_secret().to_owned());
        assert_eq!(
            secret(&s.webhooks.github_secret).as_deref(),
            Some("from-the-env")
        );
        assert_eq!(
            secret(&s.webhooks.gitlab_secret),
            None,
            "empty is no secret"
        );
        assert_eq!(
            secret(&s.webhooks.gitea_secret).as_deref(),
            Some("from-a-file")
        );
        let debug = format!("{s:?}");
        assert!(!debug.contains("from-the-env") && !debug.contains("from-a-file"));
        assert!(s.reconciler.enabled);
        assert_eq!(s.reconciler.interval_secs, 300);
        assert!(!s.worker.mark_fixed_on_merge);
    }

    #[test]
    fn secrets_in_files_are_refused_and_debug_redacts() {
        let dir = tempfile::tempdir().unwrap();
        assert_refused_in_a_config_file(
            dir.path(),
            "[auth]\njwt_secret = \"oops\"\n",
            "REMEDIATOR__AUTH__JWT_SECRET",
        );

        let secret_file = dir.path().join("jwt");
        std::fs::write(&secret_file, "from-file-secret\n").unwrap();
        let s = Settings::load_with_env(
            None,
            env(&[(
                "REMEDIATOR__AUTH__JWT_SECRET_FILE",
                secret_file.to_str().unwrap(),
            )]),
        )
        .unwrap();
        let debug = format!("{s:?}");
        assert!(!debug.contains("from-file-secret"));
        assert!(!debug.contains("guest:guest"));
        assert_eq!(
            s.auth.jwt_secret.unwrap().expose_secret(),
            "from-file-secret"
        );
    }
}
