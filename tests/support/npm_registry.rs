//! A small npm registry for tests: serves packuments (`GET /NAME`) for the packages and
//! versions it is given, with integrity hashes of tarballs it also serves, on 127.0.0.1. Enough
//! for `npm install --package-lock-only` and `npm ci --dry-run`, which read metadata only.

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
}

/// One version of a package and its dependencies (name, range).
pub type Release<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

struct Packages {
    base: String,
    /// name -> version -> dependencies
    versions: BTreeMap<String, BTreeMap<String, Vec<(String, String)>>>,
}

impl NpmRegistry {
    pub async fn start(releases: &[Release<'_>]) -> NpmRegistry {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut versions: BTreeMap<String, BTreeMap<String, Vec<(String, String)>>> =
            BTreeMap::new();
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
            versions,
        });
        let router = Router::new()
            .route("/{name}", axum::routing::get(packument))
            .with_state(state);
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        NpmRegistry {
            url: format!("{base}/"),
            task,
        }
    }

    /// The integrity npm records for a version (of the metadata we serve).
    pub fn integrity(name: &str, version: &str) -> String {
        integrity(name, version)
    }
}

impl Drop for NpmRegistry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A stable, well-formed sha512 integrity per name and version (the tarball is never fetched
/// by the commands the tests run, so only its form matters).
fn integrity(name: &str, version: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut bytes = Vec::with_capacity(64);
    for round in 0..8u8 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (name, version, round).hash(&mut hasher);
        bytes.extend_from_slice(&hasher.finish().to_be_bytes());
    }
    format!("sha512-{}", super::git_server::base64_encode(&bytes))
}

async fn packument(State(state): State<Arc<Packages>>, Path(name): Path<String>) -> Response {
    let Some(versions) = state.versions.get(&name) else {
        return (StatusCode::NOT_FOUND, "{\"error\":\"not found\"}").into_response();
    };
    let mut all = serde_json::Map::new();
    for (version, deps) in versions {
        let deps: serde_json::Map<String, Value> = deps
            .iter()
            .map(|(n, r)| (n.clone(), Value::String(r.clone())))
            .collect();
        all.insert(
            version.clone(),
            json!({"name": name, "version": version, "dependencies": deps, "dist": {
                "tarball": format!("{}/{name}/-/{name}-{version}.tgz", state.base),
                "integrity": integrity(&name, version)}}),
        );
    }
    let latest = versions.keys().last().cloned().unwrap_or_default();
    axum::Json(
        json!({"name": name, "dist-tags": {"latest": latest}, "versions": Value::Object(all)}),
    )
    .into_response()
}
