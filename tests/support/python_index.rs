//! A PEP 503 "simple" package index for tests, on 127.0.0.1: `/simple/NAME/` lists the
//! distributions of a directory whose normalised name is NAME, each linked with its sha256,
//! and `/files/FILE` serves them (counting them). Enough for Poetry, which reads a project's
//! declared source.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

pub struct PythonIndex {
    /// `http://127.0.0.1:PORT/simple/`
    pub url: String,
    served: Arc<Served>,
    task: tokio::task::JoinHandle<()>,
}

struct Served {
    dir: std::path::PathBuf,
    files: AtomicUsize,
}

impl PythonIndex {
    pub async fn start(dir: &std::path::Path) -> PythonIndex {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let served = Arc::new(Served {
            dir: dir.to_path_buf(),
            files: AtomicUsize::new(0),
        });
        let router = Router::new()
            .route("/simple/{name}/", axum::routing::get(project))
            .route("/files/{file}", axum::routing::get(file))
            .with_state(served.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        PythonIndex {
            url: format!("{base}/simple/"),
            served,
            task,
        }
    }

    /// How many distribution files the index served.
    pub fn file_downloads(&self) -> usize {
        self.served.files.load(Ordering::SeqCst)
    }
}

impl Drop for PythonIndex {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn normalise(name: &str) -> String {
    name.to_lowercase().replace(['_', '.'], "-")
}

async fn project(State(served): State<Arc<Served>>, Path(name): Path<String>) -> Response {
    use sha2::Digest;
    let dir = &served.dir;
    let mut links = String::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    for file in files {
        let project = file.split('-').next().unwrap_or_default();
        if normalise(project) != normalise(&name) {
            continue;
        }
        let digest = sha2::Sha256::digest(std::fs::read(dir.join(&file)).unwrap());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        links.push_str(&format!(
            "<a href=\"/files/{file}#sha256={hex}\">{file}</a>\n"
        ));
    }
    if links.is_empty() {
        return StatusCode::NOT_FOUND.into_response();
    }
    Html(format!(
        "<!DOCTYPE html><html><body>\n{links}</body></html>\n"
    ))
    .into_response()
}

async fn file(State(served): State<Arc<Served>>, Path(file): Path<String>) -> Response {
    if file.contains('/') || file.starts_with('.') {
        return StatusCode::NOT_FOUND.into_response();
    }
    match std::fs::read(served.dir.join(&file)) {
        Ok(bytes) => {
            served.files.fetch_add(1, Ordering::SeqCst);
            bytes.into_response()
        }
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}
