//! Registry credentials, added by the worker to a tool's requests on their way out, as
//! Dependabot's credentials proxy does: the tool sees a registry URL and no token, and code it
//! runs (a build backend, a lifecycle script) finds none in its files or environment.
//!
//! - HTTPS (`CONNECT host:port` to a registry with credentials): the egress proxy terminates
//!   TLS with a certificate of the worker's [`super::registry_ca::RegistryCa`], which only the
//!   sandbox trusts, reads each HTTP/1.1 request, and sends it on to the same host and port over
//!   verified TLS (the machine's trust store and `sandbox.ca_bundle`) with the token added. The
//!   host comes from the CONNECT line, never from the request, so a tool cannot send the token
//!   anywhere else.
//! - Plain HTTP (a registry on a private network): the token is added to the proxied request.
//!
//! The header is the one each client would have sent from its own configuration: `Bearer` for
//! the npm family (`.npmrc` `_authToken`), the token as it is for Cargo (`Authorization` of an
//! alternative registry), and `Basic login:token` for everything else (pip, uv, Poetry, Go read
//! `.netrc`).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use secrecy::{ExposeSecret, SecretString};
use tokio::net::UnixStream;

use super::registry_ca::RegistryCa;

/// A request body larger than this is refused (registry requests are queries, not uploads).
const MAX_REQUEST_BODY: usize = 16 * 1024 * 1024;

/// One registry's credential, for one tool run.
#[derive(Clone)]
pub struct RegistryAuth {
    /// Lower case; an IPv6 literal without brackets.
    pub host: String,
    /// `None`: any port of the host.
    pub port: Option<u16>,
    /// The `.netrc`-style login paired with the token in Basic auth.
    pub login: String,
    pub token: SecretString,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl RegistryAuth {
    /// From a configured `host` (`name` or `name:port`).
    pub fn new(host: &str, login: &str, token: SecretString) -> Self {
        let (name, port) = match host.rsplit_once(':') {
            Some((name, port)) if !name.contains(':') || name.ends_with(']') => {
                (name, port.parse().ok())
            }
            _ => (host, None),
        };
        RegistryAuth {
            host: name
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase(),
            port,
            login: login.to_owned(),
            token,
        }
    }

    pub fn matches(&self, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.host.eq_ignore_ascii_case(host) && self.port.is_none_or(|p| p == port)
    }

    /// The forms of the token a tool's output could show, to cut.
    pub fn secrets(&self) -> Vec<String> {
        let token = self.token.expose_secret();
        vec![token.to_owned(), format!("{}:{token}", self.login)]
    }

    /// The `Authorization` value the client sending `user_agent` would have sent.
    pub fn header(&self, user_agent: &str) -> String {
        use base64::Engine;
        let token = self.token.expose_secret();
        let agent = user_agent.to_ascii_lowercase();
        if ["npm/", "pnpm/", "yarn/", "bun/"]
            .iter()
            .any(|client| agent.starts_with(client))
        {
            format!("Bearer {token}")
        } else if agent.starts_with("cargo/") {
            token.to_owned()
        } else {
            let pair = format!("{}:{token}", self.login);
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        }
    }
}

/// The credential for `host:port`, if any.
pub fn find<'a>(auths: &'a [RegistryAuth], host: &str, port: u16) -> Option<&'a RegistryAuth> {
    auths.iter().find(|auth| auth.matches(host, port))
}

/// Serves one CONNECT tunnel to `host:port` as the registry itself: TLS with the CA's
/// certificate for the host, each request sent on with the credential.
pub async fn serve_tunnel(
    client: UnixStream,
    host: String,
    port: u16,
    auth: RegistryAuth,
    ca: &RegistryCa,
    upstream: reqwest::Client,
) -> Result<(), String> {
    let config = ca.server_config(&host)?;
    let tls = tokio_rustls::TlsAcceptor::from(config)
        .accept(client)
        .await
        .map_err(|e| format!("TLS with the tool: {e}"))?;
    let target = Arc::new(Target {
        origin: origin(&host, port),
        auth,
        upstream,
    });
    let service = hyper::service::service_fn(move |request| {
        let target = target.clone();
        async move { Ok::<_, std::convert::Infallible>(target.forward(request).await) }
    });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
        .await
        .map_err(|e| format!("serving the tool's requests: {e}"))
}

/// `https://host:port`, brackets around an IPv6 literal.
fn origin(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("https://[{host}]:{port}")
    } else {
        format!("https://{host}:{port}")
    }
}

type ProxyBody = BoxBody<Bytes, std::io::Error>;

struct Target {
    origin: String,
    auth: RegistryAuth,
    upstream: reqwest::Client,
}

/// Headers that belong to one connection, or that we set ourselves.
const NOT_FORWARDED: &[&str] = &[
    "host",
    "connection",
    "proxy-connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "upgrade",
    "proxy-authorization",
    "authorization",
    "content-length",
];

impl Target {
    async fn forward(&self, request: Request<Incoming>) -> Response<ProxyBody> {
        match self.send(request).await {
            Ok(response) => response,
            Err(why) => {
                tracing::info!(registry = %self.origin, %why, "a registry request through the credentials proxy failed");
                let body = format!("the worker could not reach the registry: {why}\n");
                let mut response = Response::new(full(body));
                *response.status_mut() = hyper::StatusCode::BAD_GATEWAY;
                response
            }
        }
    }

    async fn send(&self, request: Request<Incoming>) -> Result<Response<ProxyBody>, String> {
        let (parts, body) = request.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let agent = parts
            .headers
            .get(hyper::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = http_body_util::Limited::new(body, MAX_REQUEST_BODY)
            .collect()
            .await
            .map_err(|e| format!("reading the request: {e}"))?
            .to_bytes();
        let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes())
            .map_err(|e| e.to_string())?;
        let mut outgoing = self
            .upstream
            .request(method, format!("{}{path}", self.origin))
            .body(body);
        for (name, value) in &parts.headers {
            if !NOT_FORWARDED.contains(&name.as_str()) {
                outgoing = outgoing.header(name.as_str(), value.as_bytes());
            }
        }
        outgoing = outgoing.header("authorization", self.auth.header(&agent));
        let answer = outgoing.send().await.map_err(|e| e.to_string())?;
        let mut response = Response::builder().status(answer.status().as_u16());
        for (name, value) in answer.headers() {
            if !NOT_FORWARDED.contains(&name.as_str()) {
                response = response.header(name.as_str(), value.as_bytes());
            }
        }
        let chunks = futures_util::stream::unfold(answer, |mut answer| async move {
            match answer.chunk().await {
                Ok(Some(chunk)) => Some((Ok(Frame::data(chunk)), answer)),
                Ok(None) => None,
                Err(e) => Some((Err(std::io::Error::other(e)), answer)),
            }
        });
        response
            .body(BodyExt::boxed(StreamBody::new(chunks)))
            .map_err(|e| e.to_string())
    }
}

fn full(text: String) -> ProxyBody {
    Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed()
}

/// The client that carries the requests on: the machine's trust store plus `extra_roots` (the
/// PEM text of `sandbox.ca_bundle`), no redirects (a registry's redirect goes back to the tool,
/// which asks again through the proxy, checked again).
pub fn upstream_client(extra_roots: Option<&str>) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(std::time::Duration::from_secs(30));
    if let Some(pem) = extra_roots {
        for certificate in reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .map_err(|e| format!("sandbox.ca_bundle: {e}"))?
        {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build().map_err(|e| e.to_string())
}

/// A plain-HTTP request head (origin form) with the credential's `Authorization` in place of
/// any the tool sent.
pub fn with_authorization(head: &[u8], auth: &RegistryAuth) -> Vec<u8> {
    let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
        return head.to_vec();
    };
    let text = String::from_utf8_lossy(&head[..end]);
    let agent = text
        .split("\r\n")
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("user-agent")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    let mut out = String::new();
    for line in text.split("\r\n") {
        let name = line.split(':').next().unwrap_or_default().trim();
        if !name.eq_ignore_ascii_case("authorization") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str(&format!("Authorization: {}\r\n\r\n", auth.header(&agent)));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&head[end + 4..]);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(host: &str) -> RegistryAuth {
        RegistryAuth::new(host, "ci", SecretString::from("t0ken".to_owned()))
    }

    #[test]
    fn each_client_gets_the_header_its_own_configuration_would_send() {
        let auth = auth("npm.internal.example");
        assert_eq!(auth.header("npm/11.1.0 node/v20.20.2"), "Bearer t0ken");
        assert_eq!(auth.header("pnpm/10.3.0 npm/? node/v20"), "Bearer t0ken");
        assert_eq!(auth.header("cargo/1.95.0"), "t0ken");
        // ci:t0ken
        assert_eq!(auth.header("uv/0.13.9"), "Basic Y2k6dDBrZW4=");
        assert_eq!(auth.secrets(), ["t0ken", "ci:t0ken"]);
    }

    #[test]
    fn a_credential_matches_its_host_and_port_only() {
        assert!(auth("npm.internal.example").matches("NPM.internal.example", 443));
        assert!(auth("npm.internal.example").matches("npm.internal.example", 8443));
        assert!(auth("127.0.0.1:4873").matches("127.0.0.1", 4873));
        assert!(!auth("127.0.0.1:4873").matches("127.0.0.1", 5672));
        assert!(!auth("npm.internal.example").matches("npm.internal.example.evil", 443));
        assert!(auth("[::1]:4873").matches("[::1]", 4873));
    }

    #[test]
    fn a_plain_request_carries_the_credential_and_no_other() {
        let head = b"GET /lodash HTTP/1.1\r\nHost: r\r\nAuthorization: Bearer from-the-repo\r\nUser-Agent: npm/11\r\nConnection: close\r\n\r\n";
        let out = String::from_utf8(with_authorization(head, &auth("r"))).unwrap();
        assert!(!out.contains("from-the-repo"), "{out}");
        assert!(
            out.ends_with("Connection: close\r\nAuthorization: Bearer t0ken\r\n\r\n"),
            "{out}"
        );
    }
}
