//! The console's two static files, compiled into the binary: the stylesheet and the live
//! refresh script (hand-written, no build step, nothing from a CDN).

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

use super::ConsoleError;

const CONSOLE_JS: &str = include_str!("static/console.js");
const CONSOLE_CSS: &str = include_str!("static/console.css");

pub async fn serve(Path(file): Path<String>) -> Result<Response, ConsoleError> {
    let (body, content_type) = match file.as_str() {
        "console.js" => (CONSOLE_JS, "text/javascript; charset=utf-8"),
        "console.css" => (CONSOLE_CSS, "text/css; charset=utf-8"),
        _ => return Err(ConsoleError::NotFound("no such file".into())),
    };
    // A short cache: the files change only with a new binary.
    Ok((
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response())
}
