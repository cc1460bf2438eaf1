//! A small npm registry for tests: serves packuments (`GET /NAME`) for the packages and
//! versions it is given, and their tarballs (`GET /NAME/-/NAME-VERSION.tgz`, real and
//! deterministic, so the integrity it announces holds), on 127.0.0.1. Enough for npm and pnpm's
//! lock-only runs (metadata) and for yarn 1, which fetches tarballs.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub struct NpmRegistry {
    /// `http://127.0.0.1:PORT/`
    pub url: String,
    task: tokio::task::JoinHandle<()>,
    state: Arc<Packages>,
}

/// One version of a package and its dependencies (name, range).
pub type Release<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

type Versions = BTreeMap<String, BTreeMap<String, Vec<(String, String)>>>;

/// Files a release carries besides its `package.json`: (name, version) -> (path, content).
type Files = BTreeMap<(String, String), Vec<(String, String)>>;

struct Packages {
    base: String,
    /// When set, every request must carry `Authorization: Bearer TOKEN` (a private registry).
    token: Option<String>,
    /// Requests that carried it.
    authorized: std::sync::atomic::AtomicUsize,
    /// Tarballs served.
    tarballs: std::sync::atomic::AtomicUsize,
    /// name -> version -> dependencies; a test may publish more while it runs.
    versions: std::sync::RwLock<Versions>,
    files: std::sync::RwLock<Files>,
}

impl NpmRegistry {
    pub async fn start(releases: &[Release<'_>]) -> NpmRegistry {
        Self::start_private(releases, None).await
    }

    /// A registry that answers 401 to any request without `Authorization: Bearer TOKEN`.
    pub async fn start_private(releases: &[Release<'_>], token: Option<&str>) -> NpmRegistry {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut versions = Versions::new();
        for (name, version, deps) in releases {
            versions.entry(name.to_string()).or_default().insert(
                version.to_string(),
                deps.iter()
                    .map(|(n, r)| (n.to_string(), r.to_string()))
                    .collect(),
            );
        }
        let state = Arc::new(Packages {
            base: base.clone(),
            token: token.map(str::to_owned),
            authorized: Default::default(),
            tarballs: Default::default(),
            versions: std::sync::RwLock::new(versions),
            files: Default::default(),
        });
        let state_handle = state.clone();
        let router = Router::new()
            .route("/{name}", axum::routing::get(packument))
            .route("/{name}/-/{file}", axum::routing::get(tarball_file))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                authorize,
            ))
            .with_state(state);
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        NpmRegistry {
            url: format!("{base}/"),
            task,
            state: state_handle,
        }
    }

    /// The integrity npm records for a version without dependencies.
    pub fn integrity(name: &str, version: &str) -> String {
        integrity(name, version, &[])
    }
}

impl NpmRegistry {
    /// The integrity of a version this registry serves (its tarball names its dependencies).
    pub fn integrity_of(&self, name: &str, version: &str) -> String {
        let deps = self
            .state
            .versions
            .read()
            .unwrap()
            .get(name)
            .and_then(|all| all.get(version))
            .cloned()
            .unwrap_or_default();
        let files = self.state.files_of(name, version);
        integrity_with(name, version, &deps, &files)
    }

    /// Puts `files` (path inside the package, content) into the tarball of a release, beside
    /// its `package.json`: code a project's tests run. Before any lock names its integrity.
    pub fn add_files(&self, name: &str, version: &str, files: &[(&str, &str)]) {
        self.state.files.write().unwrap().insert(
            (name.to_owned(), version.to_owned()),
            files
                .iter()
                .map(|(p, c)| ((*p).to_owned(), (*c).to_owned()))
                .collect(),
        );
    }

    /// Serves one more release from now on (as if it was published after the lock was made).
    pub fn publish(&self, (name, version, deps): Release<'_>) {
        let deps = deps.iter().map(|(n, r)| (n.to_string(), r.to_string()));
        self.state
            .versions
            .write()
            .unwrap()
            .entry(name.to_owned())
            .or_default()
            .insert(version.to_owned(), deps.collect());
    }

    /// How many tarballs the registry served.
    pub fn tarball_downloads(&self) -> usize {
        self.state
            .tarballs
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How many requests carried the registry's token.
    pub fn authorized_requests(&self) -> usize {
        self.state
            .authorized
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}

async fn authorize(
    State(state): State<Arc<Packages>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(token) = &state.token {
        let given = request
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if given != Some(format!("Bearer {token}").as_str()) {
            return (
                StatusCode::UNAUTHORIZED,
                "{\"error\":\"authentication required\"}",
            )
                .into_response();
        }
        state
            .authorized
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    next.run(request).await
}

impl Drop for NpmRegistry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Packages {
    fn files_of(&self, name: &str, version: &str) -> Vec<(String, String)> {
        self.files
            .read()
            .unwrap()
            .get(&(name.to_owned(), version.to_owned()))
            .cloned()
            .unwrap_or_default()
    }
}

/// The sha512 integrity npm records for the tarball we serve for a version.
fn integrity(name: &str, version: &str, deps: &[(String, String)]) -> String {
    integrity_with(name, version, deps, &[])
}

fn integrity_with(
    name: &str,
    version: &str,
    deps: &[(String, String)],
    files: &[(String, String)],
) -> String {
    use sha2::Digest;
    let digest = sha2::Sha512::digest(tarball(name, version, deps, files));
    format!("sha512-{}", super::git_server::base64_encode(&digest))
}

/// A real, deterministic package tarball (gzip of a ustar archive holding
/// `package/package.json` and the release's `files`), for clients that fetch tarballs (yarn 1
/// and `npm ci` install them).
fn tarball(
    name: &str,
    version: &str,
    deps: &[(String, String)],
    files: &[(String, String)],
) -> Vec<u8> {
    // The manifest in the tarball names the same dependencies as the metadata: yarn 1 reads
    // the tarball's.
    let dependencies: serde_json::Map<String, Value> = deps
        .iter()
        .map(|(n, r)| (n.clone(), Value::String(r.clone())))
        .collect();
    let body = format!(
        "{}\n",
        json!({"name": name, "version": version, "dependencies": dependencies})
    )
    .into_bytes();
    let mut tar = Vec::new();
    tar_entry(&mut tar, "package/package.json", &body);
    for (path, content) in files {
        tar_entry(&mut tar, &format!("package/{path}"), content.as_bytes());
    }
    tar.resize(tar.len() + 1024, 0);
    gzip_stored(&tar)
}

/// One ustar entry (header and content padded to 512 bytes) appended to `tar`.
fn tar_entry(tar: &mut Vec<u8>, path: &str, body: &[u8]) {
    let mut header = [0u8; 512];
    let field = |header: &mut [u8; 512], at: usize, value: &[u8]| {
        header[at..at + value.len()].copy_from_slice(value);
    };
    field(&mut header, 0, path.as_bytes());
    field(&mut header, 100, b"0000644\0");
    field(&mut header, 108, b"0000000\0");
    field(&mut header, 116, b"0000000\0");
    field(
        &mut header,
        124,
        format!("{:011o}\0", body.len()).as_bytes(),
    );
    field(&mut header, 136, b"00000000000\0");
    field(&mut header, 148, b"        ");
    header[156] = b'0';
    field(&mut header, 257, b"ustar\x0000");
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    field(&mut header, 148, format!("{sum:06o}\0 ").as_bytes());
    tar.extend_from_slice(&header);
    tar.extend_from_slice(body);
    tar.resize(tar.len().div_ceil(512) * 512, 0);
}

/// gzip with one stored (uncompressed) deflate block: valid for every gunzip, no codec needed.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    for (i, chunk) in data.chunks(65535).enumerate() {
        let last = (i + 1) * 65535 >= data.len();
        out.push(u8::from(last));
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in data {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

async fn tarball_file(
    State(state): State<Arc<Packages>>,
    Path((name, file)): Path<(String, String)>,
) -> Response {
    state
        .tarballs
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let version = file
        .strip_prefix(&format!("{name}-"))
        .and_then(|rest| rest.strip_suffix(".tgz"));
    let all = state.versions.read().unwrap();
    let deps = version.and_then(|v| all.get(&name)?.get(v));
    match version.zip(deps) {
        Some((version, deps)) => (
            [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
            tarball(&name, version, deps, &state.files_of(&name, version)),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn packument(State(state): State<Arc<Packages>>, Path(name): Path<String>) -> Response {
    let all_versions = state.versions.read().unwrap();
    let Some(versions) = all_versions.get(&name) else {
        return (StatusCode::NOT_FOUND, "{\"error\":\"not found\"}").into_response();
    };
    let mut all = serde_json::Map::new();
    for (version, deps_list) in versions {
        let deps: serde_json::Map<String, Value> = deps_list
            .iter()
            .map(|(n, r)| (n.clone(), Value::String(r.clone())))
            .collect();
        all.insert(
            version.clone(),
            json!({"name": name, "version": version, "dependencies": deps, "dist": {
                "tarball": format!("{}/{name}/-/{name}-{version}.tgz", state.base),
                "integrity": integrity_with(&name, version, deps_list, &state.files_of(&name, version))}}),
        );
    }
    let latest = versions.keys().last().cloned().unwrap_or_default();
    axum::Json(
        json!({"name": name, "dist-tags": {"latest": latest}, "versions": Value::Object(all)}),
    )
    .into_response()
}
