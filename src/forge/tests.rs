//! The registry: forge and credentials chosen by host from server config, tokens loaded at
//! startup with errors that name where the token should be, never its value.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::ExposeSecret;

use super::*;

const UNSET_VAR: &str = "REMEDIATOR_FORGE_TEST_TOKEN_THAT_IS_NEVER_SET";

/// A `[[forges]]` entry for `host` with nothing but its kind set.
fn bare_entry(host: &str, kind: ForgeKind) -> ForgeSettings {
    ForgeSettings {
        host: host.to_owned(),
        kind,
        api_url: None,
        git_username: None,
        token_env: None,
        token_file: None,
        ssh_key_file: None,
    }
}

fn github_entry(host: &str, token_file: PathBuf) -> ForgeSettings {
    ForgeSettings {
        token_file: Some(token_file),
        ..bare_entry(host, ForgeKind::Github)
    }
}

fn plain_entry(host: &str) -> ForgeSettings {
    bare_entry(host, ForgeKind::PlainGit)
}

fn token_file(dir: &tempfile::TempDir, name: &str, content: &str) -> PathBuf {
    let path = dir.path().join(name);
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(content.as_bytes()).unwrap();
    path
}

/// The registry as startup builds it, with a 5 s timeout and loopback allowed.
fn from_settings(forges: &[ForgeSettings], policy: UrlPolicy) -> anyhow::Result<ForgeRegistry> {
    ForgeRegistry::from_settings(
        forges,
        policy,
        Duration::from_secs(5),
        EgressPolicy::allow_all(),
    )
}

fn registry(forges: &[ForgeSettings], policy: UrlPolicy) -> ForgeRegistry {
    match from_settings(forges, policy) {
        Ok(registry) => registry,
        Err(e) => panic!("registry should build: {e:#}"),
    }
}

fn startup_error(forges: &[ForgeSettings], policy: UrlPolicy) -> String {
    match from_settings(forges, policy) {
        Ok(_) => panic!("registry should refuse this config"),
        Err(e) => format!("{e:#}"),
    }
}

/// A spec with no labels, for checks that never reach a forge API.
fn spec(owner: &str, repo: &str) -> PullRequestSpec {
    PullRequestSpec {
        owner: owner.to_owned(),
        repo: repo.to_owned(),
        head_branch: "remediator/x".to_owned(),
        base_branch: "main".to_owned(),
        title: "t".to_owned(),
        body: "b".to_owned(),
        labels: vec![],
        draft: false,
    }
}

/// What `url` resolves to, which must be a repository of the forge named `forge_name` whose
/// git user is `username`.
fn resolved_as(
    registry: &ForgeRegistry,
    url: &str,
    forge_name: &str,
    username: &str,
) -> ResolvedRepository {
    let resolved = registry
        .resolve(url)
        .unwrap_or_else(|e| panic!("{url} should resolve: {e}"));
    assert_eq!(resolved.forge.name(), forge_name, "{url}");
    assert_eq!(resolved.credentials.username, username, "{url}");
    resolved
}

/// The token a resolved repository's git credentials carry, shown.
fn token_of(resolved: &ResolvedRepository) -> Option<String> {
    let token = resolved.credentials.token.as_ref();
    token.map(|t| t.expose_secret().to_owned())
}

fn resolve_error(registry: &ForgeRegistry, url: &str) -> ForgeError {
    match registry.resolve(url) {
        Ok(resolved) => panic!("{url} should not resolve, got {resolved:?}"),
        Err(e) => e,
    }
}

#[test]
fn resolves_by_host_with_the_configured_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(&dir, "gh", "ghp_from_file\n");
    let mut ghe = github_entry("GHE.example.com", token.clone());
    ghe.api_url = Some("https://ghe.example.com/api/v3".to_owned());
    ghe.ssh_key_file = Some(token.clone());
    let registry = registry(
        &[
            github_entry("github.com", token.clone()),
            ghe,
            plain_entry("git.example.org"),
        ],
        UrlPolicy::default(),
    );

    let github_url = "https://github.com/acme/widgets.git";
    let resolved = resolved_as(&registry, github_url, "github", "x-access-token");
    assert_eq!(resolved.url.path, "acme/widgets");
    assert_eq!(
        token_of(&resolved),
        Some("ghp_from_file".to_owned()),
        "the trailing newline is trimmed"
    );
    match &resolved.forge {
        AnyForge::Github(forge) => assert_eq!(forge.api_url(), "https://api.github.com/"),
        other => panic!("expected GitHub, got {other:?}"),
    }

    let ghe = registry
        .resolve("https://ghe.example.com/acme/widgets")
        .unwrap();
    match &ghe.forge {
        AnyForge::Github(forge) => assert_eq!(forge.api_url(), "https://ghe.example.com/api/v3"),
        other => panic!("expected GitHub Enterprise, got {other:?}"),
    }
    assert_eq!(
        ghe.credentials.ssh_key_file.as_deref(),
        Some(token.as_path())
    );

    let plain_url = "https://git.example.org/team/app.git";
    let plain = resolved_as(&registry, plain_url, "plain_git", "git");
    assert!(plain.credentials.token.is_none());
}

#[test]
fn ssh_urls_use_the_url_user_and_match_the_bare_host() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(&dir, "gh", "t");
    let registry = registry(
        &[github_entry("ghe.example.com", token)],
        UrlPolicy::default(),
    );
    resolved_as(
        &registry,
        "git@ghe.example.com:acme/widgets.git",
        "github",
        "git",
    );
    let ported = registry
        .resolve("ssh://deploy@ghe.example.com:2222/acme/widgets.git")
        .unwrap();
    assert_eq!(ported.credentials.username, "deploy");
    assert_eq!(ported.url.host, "ghe.example.com:2222");
    // https on another port is another service; it does not fall back.
    let e = resolve_error(&registry, "https://ghe.example.com:8443/acme/widgets");
    assert_eq!(
        e,
        ForgeError::Permanent(
            "no forge configured for host ghe.example.com:8443; add a [[forges]] entry".to_owned()
        )
    );
}

#[test]
fn unknown_hosts_and_bad_urls_are_permanent_errors() {
    let registry = registry(&[plain_entry("127.0.0.1:8080")], UrlPolicy::default());
    let e = resolve_error(&registry, "https://evil.example/acme/widgets");
    assert!(!e.is_transient());
    assert_eq!(
        e.to_string(),
        "no forge configured for host evil.example; add a [[forges]] entry"
    );
    let e = resolve_error(&registry, "http://127.0.0.1:8080/acme/widgets");
    assert_eq!(
        e.to_string(),
        "repository URL scheme http is not allowed; set git.allow_http = true for local use only"
    );
    let e = resolve_error(&registry, "https://tok:secret@127.0.0.1:8080/a/b");
    assert!(!e.to_string().contains("secret"), "{e}");
}

#[test]
fn local_schemes_resolve_when_allowed() {
    let policy = UrlPolicy {
        allow_http: true,
        allow_file: true,
    };
    let mut local = plain_entry("127.0.0.1:8080");
    local.token_env = Some("PATH".to_owned());
    local.git_username = Some("tester".to_owned());
    let registry = registry(&[local], policy);
    let http = registry
        .resolve("http://127.0.0.1:8080/acme/widgets.git")
        .unwrap();
    assert_eq!(http.credentials.username, "tester");
    assert_eq!(
        token_of(&http),
        std::env::var("PATH").ok().map(|p| p.trim().to_owned()),
        "the token comes from the named environment variable"
    );
    let file = registry.resolve("file:///tmp/some/repo.git").unwrap();
    assert_eq!(file.forge.name(), "plain_git");
    assert!(file.credentials.token.is_none());
}

#[test]
fn startup_errors_name_the_source_never_the_value() {
    let dir = tempfile::tempdir().unwrap();

    let mut missing_env = plain_entry("git.example.org");
    missing_env.token_env = Some(UNSET_VAR.to_owned());
    let e = startup_error(&[missing_env], UrlPolicy::default());
    assert!(e.contains(UNSET_VAR) && e.contains("is not set"), "{e}");
    assert!(e.contains("git.example.org"), "{e}");

    let missing_file = dir.path().join("no-such-token");
    let e = startup_error(
        &[github_entry("github.com", missing_file.clone())],
        UrlPolicy::default(),
    );
    assert!(e.contains(&missing_file.display().to_string()), "{e}");

    let empty = token_file(&dir, "empty", "\n");
    let e = startup_error(&[github_entry("github.com", empty)], UrlPolicy::default());
    assert!(e.contains("is empty"), "{e}");

    let secret = token_file(&dir, "secret", "ghp_do_not_print\n");
    let mut both = github_entry("github.com", secret.clone());
    both.token_env = Some("PATH".to_owned());
    let e = startup_error(&[both], UrlPolicy::default());
    assert!(e.contains("not both"), "{e}");
    assert!(!e.contains("ghp_do_not_print"), "{e}");

    let mut tokenless = github_entry("github.com", secret.clone());
    tokenless.token_file = None;
    let e = startup_error(&[tokenless], UrlPolicy::default());
    assert!(e.contains("needs a token"), "{e}");

    let mut http_api = github_entry("github.com", secret.clone());
    http_api.api_url = Some("http://api.github.com".to_owned());
    let e = startup_error(&[http_api], UrlPolicy::default());
    assert!(e.contains("clear text"), "{e}");
    assert!(!e.contains("ghp_do_not_print"), "{e}");

    let mut bad_key = plain_entry("git.example.org");
    bad_key.ssh_key_file = Some(dir.path().join("id_missing"));
    let e = startup_error(&[bad_key], UrlPolicy::default());
    assert!(e.contains("id_missing"), "{e}");

    let e = startup_error(
        &[plain_entry("github.com"), plain_entry("GitHub.com")],
        UrlPolicy::default(),
    );
    assert!(e.contains("more than one"), "{e}");

    let e = startup_error(&[plain_entry("https://github.com")], UrlPolicy::default());
    assert!(e.contains("without scheme"), "{e}");
}

#[test]
fn debug_output_never_shows_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(&dir, "gh", "ghp_do_not_print");
    let registry = registry(&[github_entry("github.com", token)], UrlPolicy::default());
    let resolved = registry.resolve("https://github.com/a/b").unwrap();
    for debug in [
        format!("{registry:?}"),
        format!("{resolved:?}"),
        format!("{:?}", resolved.credentials),
    ] {
        assert!(!debug.contains("ghp_do_not_print"), "{debug}");
    }
    assert!(format!("{:?}", resolved.credentials).contains("REDACTED"));
}

#[test]
fn settings_deserialize_from_config() {
    #[derive(serde::Deserialize)]
    struct Config {
        forges: Vec<ForgeSettings>,
        #[serde(default)]
        url_policy: UrlPolicy,
    }
    let config: Config = serde_json::from_value(serde_json::json!({
        "forges": [
            {"host": "github.com", "kind": "github", "token_env": "GITHUB_TOKEN"},
            {"host": "git.local:8080", "kind": "plain_git", "git_username": "bot"}
        ],
        "url_policy": {"allow_http": true}
    }))
    .unwrap();
    assert_eq!(config.forges[0].kind, ForgeKind::Github);
    assert_eq!(
        config.forges[0].effective_api_url(),
        Some("https://api.github.com")
    );
    assert_eq!(config.forges[0].effective_git_username(), "x-access-token");
    assert_eq!(config.forges[1].kind, ForgeKind::PlainGit);
    assert_eq!(config.forges[1].effective_api_url(), None);
    assert_eq!(config.forges[1].effective_git_username(), "bot");
    assert_eq!(
        config.url_policy,
        UrlPolicy {
            allow_http: true,
            allow_file: false
        }
    );
}

#[tokio::test]
async fn plain_git_opens_no_pull_request() {
    let registry = registry(&[plain_entry("git.example.org")], UrlPolicy::default());
    let resolved = registry.resolve("https://git.example.org/a/b").unwrap();
    let spec = spec("a", "b");
    assert_eq!(resolved.forge.open_or_reuse(&spec).await, Ok(None));
}

fn entry(host: &str, kind: ForgeKind, api_url: Option<&str>, token: PathBuf) -> ForgeSettings {
    ForgeSettings {
        api_url: api_url.map(str::to_owned),
        token_file: Some(token),
        ..bare_entry(host, kind)
    }
}

#[test]
fn gitlab_and_gitea_resolve_with_their_api_and_git_user() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(&dir, "t", "tok\n");
    let registry = registry(
        &[
            entry("gitlab.com", ForgeKind::Gitlab, None, token.clone()),
            entry(
                "gitlab.example.com",
                ForgeKind::Gitlab,
                Some("https://gitlab.example.com/api/v4"),
                token.clone(),
            ),
            entry(
                "codeberg.org",
                ForgeKind::Gitea,
                Some("https://codeberg.org/api/v1"),
                token.clone(),
            ),
        ],
        UrlPolicy::default(),
    );

    let gitlab_url = "https://gitlab.com/acme/platform/web.git";
    let gitlab = resolved_as(&registry, gitlab_url, "gitlab", "oauth2");
    assert_eq!(
        gitlab.url.owner_and_name(),
        Some(("acme/platform", "web")),
        "subgroups stay in the owner"
    );
    match &gitlab.forge {
        AnyForge::Gitlab(forge) => assert_eq!(forge.api_url(), "https://gitlab.com/api/v4"),
        other => panic!("expected GitLab, got {other:?}"),
    }
    match &registry
        .resolve("https://gitlab.example.com/acme/web")
        .unwrap()
        .forge
    {
        AnyForge::Gitlab(forge) => {
            assert_eq!(forge.api_url(), "https://gitlab.example.com/api/v4")
        }
        other => panic!("expected self-managed GitLab, got {other:?}"),
    }

    let gitea = registry
        .resolve("https://codeberg.org/acme/web.git")
        .unwrap();
    assert_eq!(gitea.forge.name(), "gitea");
    assert_eq!(gitea.credentials.username, "git");
    assert!(gitea.credentials.token.is_some());
    match &gitea.forge {
        AnyForge::Gitea(forge) => assert_eq!(forge.api_url(), "https://codeberg.org/api/v1"),
        other => panic!("expected Gitea, got {other:?}"),
    }
}

#[test]
fn gitlab_and_gitea_need_a_token_and_an_api_url_for_self_hosted_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(&dir, "t", "glpat_do_not_print");

    // Without api_url a self-managed GitLab must not fall back to gitlab.com: that would send
    // its token to another host. The error suggests the API URL the host most likely has.
    for (host, kind, suggested) in [
        (
            "gitea.example.com",
            ForgeKind::Gitea,
            "https://gitea.example.com/api/v1",
        ),
        (
            "gitlab.example.com",
            ForgeKind::Gitlab,
            "https://gitlab.example.com/api/v4",
        ),
    ] {
        let e = startup_error(
            &[entry(host, kind, None, token.clone())],
            UrlPolicy::default(),
        );
        assert!(e.contains("needs api_url") && e.contains(suggested), "{e}");
    }
    for kind in [ForgeKind::Gitlab, ForgeKind::Gitea] {
        let mut tokenless = entry(
            "gitlab.com",
            kind,
            Some("https://gitlab.com/api/v4"),
            token.clone(),
        );
        tokenless.token_file = None;
        let e = startup_error(&[tokenless], UrlPolicy::default());
        assert!(
            e.contains(&format!("a {} forge needs a token", kind.as_str())),
            "{e}"
        );
    }
    let e = startup_error(
        &[entry(
            "gitea.example.com",
            ForgeKind::Gitea,
            Some("http://gitea.example.com/api/v1"),
            token,
        )],
        UrlPolicy::default(),
    );
    assert!(e.contains("clear text"), "{e}");
    assert!(!e.contains("glpat_do_not_print"), "{e}");
}

#[test]
fn gitlab_gitea_and_forgejo_kinds_deserialize() {
    let forges: Vec<ForgeSettings> = serde_json::from_value(serde_json::json!([
        {"host": "GitLab.com", "kind": "gitlab", "token_env": "GITLAB_TOKEN"},
        {"host": "gitlab.example.com", "kind": "gitlab", "token_env": "GITLAB_TOKEN"},
        {"host": "gitea.example.com", "kind": "gitea", "api_url": "https://gitea.example.com/api/v1"},
        {"host": "codeberg.org", "kind": "forgejo", "git_username": "bot"}
    ]))
    .unwrap();
    assert_eq!(forges[0].kind, ForgeKind::Gitlab);
    assert_eq!(forges[0].kind.as_str(), "gitlab");
    assert_eq!(
        forges[0].effective_api_url(),
        Some("https://gitlab.com/api/v4")
    );
    assert_eq!(forges[0].effective_git_username(), "oauth2");
    assert_eq!(forges[1].effective_api_url(), None);
    assert_eq!(forges[2].kind, ForgeKind::Gitea);
    assert_eq!(
        forges[2].effective_api_url(),
        Some("https://gitea.example.com/api/v1")
    );
    assert_eq!(forges[2].effective_git_username(), "git");
    assert_eq!(forges[3].kind, ForgeKind::Gitea, "forgejo is gitea");
    assert_eq!(forges[3].kind.as_str(), "gitea");
    assert_eq!(forges[3].effective_api_url(), None);
    assert_eq!(forges[3].effective_git_username(), "bot");
}

/// With `[security] allow_private_networks = false`, no forge API call leaves for a loopback,
/// private or link-local address: literals are refused before sending, names by the resolver
/// before connecting. Only the loopback fake could receive anything, and it receives nothing;
/// 10.0.0.1 and 169.254.169.254 are never connected to.
#[tokio::test]
async fn forge_apis_on_private_addresses_are_refused_before_any_request() {
    let server = wiremock::MockServer::start().await;
    let port = server.address().port();
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(&dir, "t", "tok-private-check\n");
    let spec = spec("acme", "web");
    let cases = [
        (server.uri(), "127.0.0.1 is a loopback address"),
        (format!("http://localhost:{port}"), "localhost resolves to"),
        (
            "http://10.0.0.1/api".to_owned(),
            "10.0.0.1 is a private network address",
        ),
        (
            "http://169.254.169.254/latest".to_owned(),
            "169.254.169.254 is a link-local (cloud metadata range) address",
        ),
        (
            "https://[fd00::1]/api".to_owned(),
            "fd00::1 is a private network address",
        ),
    ];
    for kind in [ForgeKind::Github, ForgeKind::Gitlab, ForgeKind::Gitea] {
        for (api_url, needle) in &cases {
            let registry = ForgeRegistry::from_settings(
                &[entry("git.example.com", kind, Some(api_url), token.clone())],
                UrlPolicy {
                    allow_http: true,
                    allow_file: false,
                },
                Duration::from_secs(5),
                EgressPolicy::default(),
            )
            .unwrap();
            let resolved = registry
                .resolve("https://git.example.com/acme/web.git")
                .unwrap();
            match resolved.forge.open_or_reuse(&spec).await {
                Err(ForgeError::Permanent(message)) => {
                    assert!(message.contains(needle), "{kind:?} {api_url}: {message}");
                    assert!(message.contains("allow_private_networks"), "{message}");
                    assert!(!message.contains("tok-private-check"), "{message}");
                }
                other => panic!("{kind:?} {api_url}: expected a permanent refusal, got {other:?}"),
            }
        }
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 0);
}
