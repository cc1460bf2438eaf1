//! A real git server for tests: the git CLI's `git http-backend` (smart HTTP) run as a CGI
//! behind a small axum server on 127.0.0.1, with HTTP basic auth, serving bare repositories
//! from a temporary directory. Clone (shallow too), fetch and push run against it as they do
//! against a forge.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;

/// One entry of a test repository's first commit.
#[derive(Debug, Clone, Copy)]
pub enum RepoEntry<'a> {
    /// A regular file: (path, content).
    File(&'a str, &'a str),
    /// An executable file (mode 100755): (path, content).
    Executable(&'a str, &'a str),
    /// A symlink: (path, target).
    Symlink(&'a str, &'a str),
    /// A submodule entry (gitlink, mode 160000) pointing at a commit id that need not exist.
    Gitlink(&'a str),
}

pub struct GitServer {
    /// `http://127.0.0.1:PORT`
    pub base_url: String,
    pub user: String,
    pub password: String,
    root: tempfile::TempDir,
    requests: Arc<AtomicUsize>,
    log: Arc<Mutex<Vec<String>>>,
    fetch_delay_ms: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

struct ServerState {
    root: PathBuf,
    backend: PathBuf,
    expected_authorization: String,
    user: String,
    requests: Arc<AtomicUsize>,
    log: Arc<Mutex<Vec<String>>>,
    /// Delay before answering a fetch (`git-upload-pack`), to make clones slow.
    fetch_delay_ms: Arc<AtomicU64>,
}

impl GitServer {
    /// Starts the server on an ephemeral loopback port; it stops when the value is dropped.
    pub async fn start(user: &str, password: &str) -> GitServer {
        let root = tempfile::tempdir().expect("temp dir for the git server");
        let exec_path = run_git(None, &["--exec-path"]);
        let backend = Path::new(exec_path.trim()).join("git-http-backend");
        assert!(backend.exists(), "{} not found", backend.display());
        let requests = Arc::new(AtomicUsize::new(0));
        let log = Arc::new(Mutex::new(Vec::new()));
        let fetch_delay_ms = Arc::new(AtomicU64::new(0));
        let state = Arc::new(ServerState {
            root: root.path().to_path_buf(),
            backend,
            expected_authorization: format!(
                "Basic {}",
                base64_encode(format!("{user}:{password}").as_bytes())
            ),
            user: user.to_string(),
            requests: Arc::clone(&requests),
            log: Arc::clone(&log),
            fetch_delay_ms: Arc::clone(&fetch_delay_ms),
        });
        let router = Router::new().fallback(handle).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the git server");
        let port = listener.local_addr().expect("local address").port();
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("git server");
        });
        GitServer {
            base_url: format!("http://127.0.0.1:{port}"),
            user: user.to_string(),
            password: password.to_string(),
            root,
            requests,
            log,
            fetch_delay_ms,
            task,
        }
    }

    /// Makes every fetch (the pack a clone downloads) wait `delay` before it is answered.
    pub fn delay_fetches(&self, delay: std::time::Duration) {
        self.fetch_delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Makes the bare repository `NAME.git` whose branch `default_branch` has one commit with
    /// `files`, and returns its clone URL (without credentials).
    pub fn create_repo(&self, name: &str, default_branch: &str, files: &[(&str, &str)]) -> String {
        let entries: Vec<RepoEntry<'_>> = files
            .iter()
            .map(|(path, content)| RepoEntry::File(path, content))
            .collect();
        self.create_repo_with(name, default_branch, &entries)
    }

    /// Like `create_repo`, with executables, symlinks and submodule entries too.
    pub fn create_repo_with(
        &self,
        name: &str,
        default_branch: &str,
        entries: &[RepoEntry<'_>],
    ) -> String {
        let work = tempfile::tempdir().expect("temp work tree");
        let work_dir = work.path().to_str().expect("UTF-8 temp path");
        run_git(None, &["init", "-q", "-b", default_branch, work_dir]);
        for entry in entries {
            match *entry {
                RepoEntry::File(path, content) | RepoEntry::Executable(path, content) => {
                    let full = work.path().join(path);
                    std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
                    std::fs::write(&full, content).expect("write file");
                    if matches!(entry, RepoEntry::Executable(..)) {
                        use std::os::unix::fs::PermissionsExt;
                        std::fs::set_permissions(&full, std::fs::Permissions::from_mode(0o755))
                            .expect("chmod");
                    }
                    run_git(Some(work.path()), &["add", "--", path]);
                }
                RepoEntry::Symlink(path, target) => {
                    let full = work.path().join(path);
                    std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
                    std::os::unix::fs::symlink(target, &full).expect("symlink");
                    run_git(Some(work.path()), &["add", "--", path]);
                }
                RepoEntry::Gitlink(path) => {
                    let cacheinfo = format!("160000,{},{path}", "1".repeat(40));
                    run_git(
                        Some(work.path()),
                        &["update-index", "--add", "--cacheinfo", &cacheinfo],
                    );
                }
            }
        }
        run_git(
            Some(work.path()),
            &[
                "-c",
                "user.name=Test Setup",
                "-c",
                "user.email=setup@example.com",
                "commit",
                "-q",
                "-m",
                "initial commit",
            ],
        );
        let bare = self.repo_path(name);
        let bare_dir = bare.to_str().expect("UTF-8 temp path");
        run_git(
            None,
            &["init", "-q", "--bare", "-b", default_branch, bare_dir],
        );
        run_git(Some(&bare), &["config", "http.receivepack", "true"]);
        let refspec = format!("{default_branch}:refs/heads/{default_branch}");
        run_git(Some(work.path()), &["push", "-q", bare_dir, &refspec]);
        format!("{}/{name}.git", self.base_url)
    }

    /// Runs the git CLI in the bare repository `NAME.git` and returns its stdout; panics when git
    /// fails.
    pub fn git(&self, repo: &str, args: &[&str]) -> String {
        run_git(Some(&self.repo_path(repo)), args)
    }

    /// The bare repository's directory, for `file://` clones.
    pub fn repo_path(&self, repo: &str) -> PathBuf {
        self.root.path().join(format!("{repo}.git"))
    }

    /// How many HTTP requests the server has answered so far.
    pub fn request_count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Every request so far as "METHOD /path?query", oldest first.
    pub fn request_log(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Adds a commit with `files` on top of `branch` of `NAME.git` (as another developer's push
    /// would), and returns the new commit id.
    pub fn push_commit(
        &self,
        repo: &str,
        branch: &str,
        files: &[(&str, &str)],
        message: &str,
    ) -> String {
        let work = tempfile::tempdir().expect("temp work tree");
        let bare = self.repo_path(repo);
        let bare_dir = bare.to_str().expect("UTF-8 temp path");
        let work_dir = work.path().to_str().expect("UTF-8 temp path");
        run_git(None, &["clone", "-q", "-b", branch, bare_dir, work_dir]);
        for (path, content) in files {
            let full = work.path().join(path);
            std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
            std::fs::write(&full, content).expect("write file");
        }
        run_git(Some(work.path()), &["add", "-A"]);
        run_git(
            Some(work.path()),
            &[
                "-c",
                "user.name=Other Developer",
                "-c",
                "user.email=other@example.com",
                "commit",
                "-q",
                "-m",
                message,
            ],
        );
        run_git(Some(work.path()), &["push", "-q", "origin", branch]);
        run_git(Some(work.path()), &["rev-parse", "HEAD"])
            .trim()
            .to_string()
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(State(state): State<Arc<ServerState>>, request: Request) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    if let Ok(mut log) = state.log.lock() {
        log.push(format!("{} {}", request.method(), request.uri()));
    }
    let authorized = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == state.expected_authorization);
    if !authorized {
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header("www-authenticate", "Basic realm=\"git\"")
            .body(Body::from("authentication required\n"))
            .expect("401 response");
    }
    let delay = state.fetch_delay_ms.load(Ordering::SeqCst);
    if delay > 0 && request.uri().path().ends_with("/git-upload-pack") {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    match run_backend(&state, request).await {
        Ok(response) => response,
        Err(message) => Response::builder()
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .body(Body::from(message))
            .expect("500 response"),
    }
}

/// Runs `git http-backend` for one request, as a web server runs a CGI.
async fn run_backend(state: &ServerState, request: Request) -> Result<Response, String> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|e| format!("reading the request body: {e}"))?;
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let mut command = tokio::process::Command::new(&state.backend);
    command
        .env("GIT_PROJECT_ROOT", &state.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_USER", &state.user)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("AUTH_TYPE", "Basic")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let protocol = header("git-protocol");
    if !protocol.is_empty() {
        command.env("GIT_PROTOCOL", protocol);
    }
    let encoding = header("content-encoding");
    if !encoding.is_empty() {
        command.env("HTTP_CONTENT_ENCODING", encoding);
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("starting git http-backend: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("no stdin for the backend")?;
    // Feed the body while the output is read, so a large exchange cannot deadlock on full pipes.
    let writer = tokio::spawn(async move {
        let result = stdin.write_all(&body).await;
        drop(stdin);
        result
    });
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| format!("running git http-backend: {e}"))?;
    let _ = writer.await;
    if !output.stderr.is_empty() {
        eprintln!(
            "git http-backend {} {}: {}",
            parts.method,
            parts.uri,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    parse_cgi_output(&output.stdout)
}

/// Splits CGI output into headers (with the `Status:` pseudo-header) and body.
fn parse_cgi_output(output: &[u8]) -> Result<Response, String> {
    let (head, body) = match find(output, b"\r\n\r\n") {
        Some(i) => (&output[..i], &output[i + 4..]),
        None => match find(output, b"\n\n") {
            Some(i) => (&output[..i], &output[i + 2..]),
            None => return Err("git http-backend wrote no header block".to_string()),
        },
    };
    let head = std::str::from_utf8(head).map_err(|_| "non-UTF-8 CGI headers".to_string())?;
    let mut status = StatusCode::OK;
    let mut headers = HeaderMap::new();
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().unwrap_or("200");
            status = code
                .parse::<u16>()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .ok_or_else(|| format!("bad CGI status {value:?}"))?;
        } else {
            let name = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|e| format!("bad CGI header name {name:?}: {e}"))?;
            let value = HeaderValue::from_str(value)
                .map_err(|e| format!("bad CGI header value {value:?}: {e}"))?;
            headers.append(name, value);
        }
    }
    let mut response = Response::new(Body::from(body.to_vec()));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Runs the git CLI (in `dir` when given), isolated from the machine's git configuration, and
/// returns stdout; panics with git's stderr on failure.
fn run_git(dir: Option<&Path>, args: &[&str]) -> String {
    let mut command = Command::new("git");
    if let Some(dir) = dir {
        command.arg("-C").arg(dir);
    }
    let output = command
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("run git");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 git output")
}

pub fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn base64_matches_rfc4648_vectors() {
    for (input, expected) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("user:pass", "dXNlcjpwYXNz"),
    ] {
        assert_eq!(base64_encode(input.as_bytes()), expected);
    }
}
