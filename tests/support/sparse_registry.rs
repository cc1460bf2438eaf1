//! A cargo sparse registry for tests, on 127.0.0.1: the files of a local registry directory
//! (`index/...` and the `.crate` files) served over HTTP, with the `index/config.json` that
//! tells cargo where to download from. The worker's cargo reads it as it reads any registry
//! served over the network: through the sandbox's egress proxy.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

pub struct SparseRegistry {
    /// `http://127.0.0.1:PORT/index/`, as `registry = "sparse+URL"` names it.
    pub index_url: String,
    task: tokio::task::JoinHandle<()>,
}

impl SparseRegistry {
    /// Serves `dir` (a local registry's layout), writing its `index/config.json`.
    pub async fn start(dir: &std::path::Path) -> SparseRegistry {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let config = format!("{{\"dl\": \"{base}/{{crate}}-{{version}}.crate\"}}");
        std::fs::write(dir.join("index").join("config.json"), config).unwrap();
        let router = Router::new()
            .route("/{*path}", axum::routing::get(file))
            .with_state(Arc::new(dir.to_path_buf()));
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        SparseRegistry {
            index_url: format!("{base}/index/"),
            task,
        }
    }
}

impl Drop for SparseRegistry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn file(State(dir): State<Arc<std::path::PathBuf>>, Path(path): Path<String>) -> Response {
    if path
        .split('/')
        .any(|part| part.is_empty() || part.starts_with('.'))
    {
        return StatusCode::NOT_FOUND.into_response();
    }
    match std::fs::read(dir.join(&path)) {
        Ok(bytes) => bytes.into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}
