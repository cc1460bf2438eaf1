//! Form bodies (`application/x-www-form-urlencoded`) as the console's POSTs send them, read
//! with the intake's body limit and deadline. Keys may repeat: a selection of dead letters is
//! one `id` per checked box.

use axum::body::Body;

use super::ConsoleError;
use crate::api::guard::{RequestLimits, read_body};

pub struct Form(Vec<(String, String)>);

impl Form {
    pub async fn read(body: Body, limits: RequestLimits) -> Result<Form, ConsoleError> {
        let bytes = read_body(body, limits).await.map_err(ConsoleError::from)?;
        let pairs: Vec<(String, String)> = form_urlencoded::parse(&bytes).into_owned().collect();
        // Text from a form may reach the database or the logs: no control characters.
        for (key, value) in &pairs {
            crate::api::guard::check_text("a form field", key).map_err(ConsoleError::from)?;
            crate::api::guard::check_text(key, value).map_err(ConsoleError::from)?;
        }
        Ok(Form(pairs))
    }

    /// The first value of `key`, trimmed; `None` when absent or empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Every non-empty value of `key`.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
            .collect()
    }
}
