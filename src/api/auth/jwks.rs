//! The identity provider's JWKS: fetched (bounded in time and size, never following a redirect
//! to another host), cached, and fetched again when a token names an unknown `kid` or the cache
//! is old, at most once per `auth.jwks_min_refresh_secs`.
//!
//! A failed fetch never widens what is accepted: the cached keys stay as they were, a token
//! whose key is not among them is refused, and before the first successful fetch every token is
//! answered "unavailable" rather than guessed about.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::Jwk;
use reqwest::Url;
use reqwest::header::ACCEPT;
use serde_json::Value;

use super::keys::{NamedKey, algorithm_name, jwk_key};

/// Whole-request timeout of one JWKS fetch: a request waits on it.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A JWKS is a few kilobytes; anything near this is not one.
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;
const MAX_REDIRECTS: usize = 5;

/// Why no key can be offered for a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The JWKS has never been fetched: nothing can be verified yet.
    NeverFetched,
    /// The token's `kid` is not in the key set; `refresh_failed` when fetching it again failed
    /// (or was rate-limited after a failure), so the answer may change later.
    UnknownKid { refresh_failed: bool },
}

#[derive(Default)]
struct Cache {
    keys: Arc<Vec<NamedKey>>,
    fetched_at: Option<Instant>,
    last_attempt: Option<Instant>,
    last_attempt_failed: bool,
}

pub struct JwksSource {
    url: Url,
    client: reqwest::Client,
    algorithm: Algorithm,
    min_refresh: Duration,
    max_age: Duration,
    cache: RwLock<Cache>,
    /// Serialises fetches, so a burst of requests waiting on the same refresh makes one call.
    fetching: tokio::sync::Mutex<()>,
}

impl JwksSource {
    pub fn new(
        url: &str,
        algorithm: Algorithm,
        min_refresh: Duration,
        max_age: Duration,
    ) -> anyhow::Result<Self> {
        let url = Url::parse(url).context("auth.jwks_url is not a URL")?;
        let loopback = url.host_str().is_some_and(|host| {
            host.eq_ignore_ascii_case("localhost")
                || host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        });
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => bail!(
                "auth.jwks_url must be an https URL (http only to a loopback host): signing keys \
                 fetched over plain http could be swapped by anyone on the path"
            ),
        }
        if !url.username().is_empty() || url.password().is_some() {
            bail!("auth.jwks_url must not carry credentials");
        }
        let origin = url.origin();
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.url().origin() != origin {
                    attempt.error("the JWKS endpoint redirected to another host; refused")
                } else if attempt.previous().len() > MAX_REDIRECTS {
                    attempt.error("the JWKS endpoint redirected too many times")
                } else {
                    attempt.follow()
                }
            }))
            .build()
            .context("building the JWKS HTTP client")?;
        Ok(JwksSource {
            url,
            client,
            algorithm,
            min_refresh,
            max_age,
            cache: RwLock::new(Cache::default()),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// The cached key set, refreshed first when it was never fetched, is older than the
    /// maximum age, or lacks the token's `kid`. With a `kid`, the set is known to hold it.
    pub async fn keys_for(&self, kid: Option<&str>) -> Result<Arc<Vec<NamedKey>>, KeyError> {
        let stale = {
            let cache = self.read();
            match cache.fetched_at {
                None => true,
                Some(at) => at.elapsed() >= self.max_age || !holds(&cache.keys, kid),
            }
        };
        if stale {
            self.refresh().await;
        }
        let cache = self.read();
        if cache.fetched_at.is_none() {
            return Err(KeyError::NeverFetched);
        }
        if !holds(&cache.keys, kid) {
            return Err(KeyError::UnknownKid {
                refresh_failed: cache.last_attempt_failed,
            });
        }
        Ok(cache.keys.clone())
    }

    /// Fetches the set unless a fetch was attempted within `min_refresh` (by this request or a
    /// concurrent one). Failures are logged and leave the cached keys as they were.
    async fn refresh(&self) {
        let _one_at_a_time = self.fetching.lock().await;
        if self
            .read()
            .last_attempt
            .is_some_and(|at| at.elapsed() < self.min_refresh)
        {
            return;
        }
        self.write().last_attempt = Some(Instant::now());
        let result = self.fetch().await;
        let mut cache = self.write();
        match result {
            Ok(keys) => {
                tracing::info!(url = %self.url, keys = keys.len(), "fetched the JWKS");
                cache.keys = Arc::new(keys);
                cache.fetched_at = Some(Instant::now());
                cache.last_attempt_failed = false;
            }
            Err(error) => {
                tracing::warn!(
                    url = %self.url,
                    error = format!("{error:#}"),
                    cached_keys = cache.keys.len(),
                    "cannot fetch the JWKS; keeping the cached keys"
                );
                cache.last_attempt_failed = true;
            }
        }
    }

    async fn fetch(&self) -> anyhow::Result<Vec<NamedKey>> {
        let mut response = self
            .client
            .get(self.url.clone())
            .header(ACCEPT, "application/json, application/jwk-set+json")
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.without_url()))
            .context("requesting the JWKS")?;
        let status = response.status();
        if !status.is_success() {
            bail!("the JWKS endpoint answered HTTP {status}");
        }
        let body = read_limited(&mut response, MAX_JWKS_BYTES).await?;
        parse_jwks(&body, self.algorithm)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Cache> {
        // A panic while holding the lock cannot leave the cache half-written (each write is
        // a few field assignments), so a poisoned lock is still usable.
        self.cache.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Cache> {
        self.cache.write().unwrap_or_else(|e| e.into_inner())
    }
}

fn holds(keys: &[NamedKey], kid: Option<&str>) -> bool {
    match kid {
        Some(kid) => keys.iter().any(|k| k.kid.as_deref() == Some(kid)),
        None => !keys.is_empty(),
    }
}

/// Reads at most `limit` bytes, chunk by chunk, so an endless body is never buffered.
async fn read_limited(response: &mut reqwest::Response, limit: usize) -> anyhow::Result<Vec<u8>> {
    if response
        .content_length()
        .is_some_and(|len| len > limit as u64)
    {
        bail!("the JWKS is larger than {limit} bytes");
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| anyhow::anyhow!("reading the JWKS: {}", e.without_url()))?
    {
        if body.len() + chunk.len() > limit {
            bail!("the JWKS is larger than {limit} bytes");
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Keeps the entries usable for `algorithm`. Entries are read one by one, so one the crate does
/// not know (a new `alg`, an encryption key) is skipped instead of voiding the whole set.
pub fn parse_jwks(body: &[u8], algorithm: Algorithm) -> anyhow::Result<Vec<NamedKey>> {
    let document: Value = serde_json::from_slice(body).context("the JWKS is not JSON")?;
    let Some(entries) = document.get("keys").and_then(Value::as_array) else {
        bail!("the JWKS has no `keys` array");
    };
    let mut keys = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let kid = entry.get("kid").and_then(Value::as_str).unwrap_or("-");
        let usable = serde_json::from_value::<Jwk>(entry.clone())
            .map_err(|e| format!("it is not a JWK the verifier knows ({e})"))
            .and_then(|jwk| jwk_key(&jwk, algorithm));
        match usable {
            Ok(key) => keys.push(key),
            Err(why) => tracing::debug!(index, kid, why, "JWKS entry skipped"),
        }
    }
    if keys.is_empty() {
        bail!(
            "the JWKS holds no key usable for {} (entries: {})",
            algorithm_name(algorithm),
            entries.len()
        );
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::auth::tests::openssl;
    use jsonwebtoken::DecodingKey;
    use serde_json::json;

    /// An RSA public JWK made by the `openssl` CLI.
    fn rsa_jwk() -> Value {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("k.key");
        let p = private.to_str().unwrap();
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            p,
        ]);
        let public = openssl(&["pkey", "-in", p, "-pubout"]);
        let key = DecodingKey::from_rsa_pem(&public).unwrap();
        serde_json::to_value(Jwk::from_decoding_key(&key, None).unwrap()).unwrap()
    }

    fn with(base: &Value, extra: Value) -> Value {
        let mut entry = base.clone();
        entry
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        entry
    }

    #[test]
    fn only_signing_keys_for_the_configured_algorithm_are_kept() {
        let rsa = rsa_jwk();
        let document = json!({"keys": [
            with(&rsa, json!({"kid": "good", "use": "sig", "alg": "RS256"})),
            with(&rsa, json!({"kid": "no-alg"})),
            with(&rsa, json!({"kid": "enc", "use": "enc"})),
            with(&rsa, json!({"kid": "ps", "alg": "PS256"})),
            with(&rsa, json!({"kid": "oaep", "alg": "RSA-OAEP"})),
            with(&rsa, json!({"kid": "ops", "key_ops": ["encrypt"]})),
            {"kid": "hmac", "kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ"},
            {"kid": "alien", "kty": "OKP", "crv": "X448", "x": "AAAA"},
            "not even an object",
        ]});
        let keys = parse_jwks(document.to_string().as_bytes(), Algorithm::RS256).unwrap();
        let kids: Vec<_> = keys.iter().map(|k| k.kid.as_deref().unwrap()).collect();
        assert_eq!(kids, ["good", "no-alg"]);

        let err = parse_jwks(document.to_string().as_bytes(), Algorithm::ES256).unwrap_err();
        assert!(err.to_string().contains("no key usable for ES256"), "{err}");
        for (body, needle) in [
            (&b"<html>"[..], "not JSON"),
            (br#"{"keys": {}}"#, "no `keys` array"),
        ] {
            let err = parse_jwks(body, Algorithm::RS256).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }
}
