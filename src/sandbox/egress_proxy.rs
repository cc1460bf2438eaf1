//! The only way out of a sandboxed tool's network namespace: an HTTP proxy of the worker's,
//! reached through a unix socket bound into the sandbox (a small forwarder inside turns
//! `127.0.0.1:3128` into that socket, since the namespace has no other interface). It takes
//! `CONNECT host:port` (HTTPS) and absolute-form requests (`GET http://host/...`), resolves
//! the host itself and connects only where the sandbox's own rules allow ([`super::reach`]:
//! configured registries by host and port, else public addresses on web ports, and only the
//! named ones once `sandbox.allowed_hosts` is set). Every refusal is recorded, so the job can
//! say what it refused.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};

use super::reach::Reach;
use super::registry_auth::{self, RegistryAuth};
use super::registry_ca::RegistryCa;

/// The interpreter of the forwarder: the system's, which the sandbox's read-only `/usr` holds.
pub const PYTHON: &str = "/usr/bin/python3";

/// The port the forwarder listens on inside the sandbox.
pub const INSIDE_PORT: u16 = 3128;
const MAX_HEAD: usize = 16 * 1024;

/// Forwards 127.0.0.1:PORT to a unix socket, then runs the tool: the forwarder is a forked
/// child, the tool replaces the parent, so the sandbox ends when the tool does.
pub const FORWARDER: &str = r#"import os, socket, sys, threading
port, path, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
server = socket.socket(); server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", port)); server.listen(64)
def pipe(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data: break
            b.sendall(data)
    except OSError: pass
    finally:
        for s in (a, b):
            try: s.shutdown(socket.SHUT_RDWR)
            except OSError: pass
def serve():
    while True:
        client, _ = server.accept()
        upstream = socket.socket(socket.AF_UNIX); upstream.connect(path)
        threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
if os.fork() == 0:
    serve()
else:
    server.close()
    os.execvp(argv[0], argv)
"#;

/// One proxy, for one tool run; it stops when dropped.
pub struct EgressProxy {
    dir: tempfile::TempDir,
    refused: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

/// What the proxy adds to the requests of registries with credentials: the worker's CA, the
/// client that carries them on, and the run's credentials.
#[derive(Clone)]
pub struct Credentials {
    pub ca: Arc<RegistryCa>,
    pub upstream: reqwest::Client,
    pub auths: Vec<RegistryAuth>,
}

impl EgressProxy {
    pub fn start(reach: Reach, credentials: Credentials) -> std::io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("remediator-egress-")
            .tempdir()?;
        std::fs::write(dir.path().join("forward.py"), FORWARDER)?;
        let listener = UnixListener::bind(dir.path().join("egress.sock"))?;
        let refused = Arc::new(Mutex::new(Vec::new()));
        let rules = Arc::new(Rules {
            reach,
            credentials,
            refused: refused.clone(),
        });
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let rules = rules.clone();
                tokio::spawn(async move { rules.handle(stream).await });
            }
        });
        Ok(EgressProxy { dir, refused, task })
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("egress.sock")
    }

    pub fn forwarder(&self) -> PathBuf {
        self.dir.path().join("forward.py")
    }

    /// What was refused so far: `host:port (why)`.
    pub fn refused(&self) -> Vec<String> {
        self.refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for EgressProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Rules {
    reach: Reach,
    credentials: Credentials,
    refused: Arc<Mutex<Vec<String>>>,
}

impl Rules {
    async fn handle(&self, mut client: UnixStream) {
        let Some((head, tunnel, host, port)) = read_head(&mut client).await else {
            let _ = client.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            return;
        };
        let auth = registry_auth::find(&self.credentials.auths, &host, port).cloned();
        if let (true, Some(auth)) = (tunnel, &auth) {
            // A registry with credentials: the proxy is the registry's end of the TLS, and
            // adds the token to each request it carries on.
            if let Err(why) = self.resolve(&host, port).await {
                return self.refuse(client, &host, port, &why).await;
            }
            if client
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await
                .is_ok()
            {
                let credentials = &self.credentials;
                let served = registry_auth::serve_tunnel(
                    client,
                    host.clone(),
                    port,
                    auth.clone(),
                    &credentials.ca,
                    credentials.upstream.clone(),
                );
                if let Err(why) = served.await {
                    tracing::info!(%host, port, %why, "a tunnel to a registry with credentials ended");
                }
            }
            return;
        }
        let mut upstream = match self.connect(&host, port).await {
            Ok(upstream) => upstream,
            Err(why) => return self.refuse(client, &host, port, &why).await,
        };
        let ready = if tunnel {
            client
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await
        } else {
            let head = origin_form(&head);
            let head = match &auth {
                Some(auth) => registry_auth::with_authorization(&head, auth),
                None => head,
            };
            upstream.write_all(&head).await
        };
        if ready.is_ok() {
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
    }

    /// Records the refusal and answers 403 with its reason.
    async fn refuse(&self, mut client: UnixStream, host: &str, port: u16, why: &str) {
        self.refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(format!("{host}:{port} ({why})"));
        let body = format!("refused by the sandbox's egress rules: {why}\n");
        let answer = format!(
            "HTTP/1.1 403 Forbidden\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = client.write_all(answer.as_bytes()).await;
    }

    /// The addresses of `host`, every one of them allowed; any refused address refuses the
    /// host (a tool may have been pointed at it on purpose).
    async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        let named = self.reach.check_name(host, port)?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| format!("cannot resolve: {e}"))?
            .collect();
        for address in &addresses {
            self.reach.check_address(named, address.ip())?;
        }
        Ok(addresses)
    }

    /// Connects to the first of `host`'s addresses, all of them allowed.
    async fn connect(&self, host: &str, port: u16) -> Result<TcpStream, String> {
        let addresses = self.resolve(host, port).await?;
        let first = addresses.first().ok_or("resolves to no address")?;
        TcpStream::connect(first)
            .await
            .map_err(|e| format!("cannot connect: {e}"))
    }
}

/// Reads the request head; returns it, whether it is a CONNECT, and the target.
async fn read_head(client: &mut UnixStream) -> Option<(Vec<u8>, bool, String, u16)> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD {
            return None;
        }
        let read = client.read(&mut buffer).await.ok()?;
        if read == 0 {
            return None;
        }
        head.extend_from_slice(&buffer[..read]);
    }
    let line = std::str::from_utf8(&head[..head.iter().position(|&b| b == b'\r')?]).ok()?;
    let mut parts = line.split(' ');
    let (method, target) = (parts.next()?, parts.next()?);
    if method == "CONNECT" {
        let (host, port) = target.rsplit_once(':')?;
        return Some((head.clone(), true, host.to_owned(), port.parse().ok()?));
    }
    let url = reqwest::Url::parse(target).ok()?;
    let host = url.host_str()?.to_owned();
    let port = url.port_or_known_default()?;
    Some((head, false, host, port))
}

/// A proxied plain-HTTP request as its origin server expects it: the request line in origin
/// form (`GET /path`, which every server takes, not only those that accept absolute form), and
/// `Connection: close`, so the client opens a new proxy connection (checked again) for its
/// next request instead of sending it, unrewritten, down this one.
fn origin_form(head: &[u8]) -> Vec<u8> {
    let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
        return head.to_vec();
    };
    let (text, rest) = (String::from_utf8_lossy(&head[..end]), &head[end + 4..]);
    let mut lines = text.split("\r\n");
    let mut out = String::new();
    if let Some(line) = lines.next() {
        let mut parts = line.splitn(3, ' ');
        let (method, target, version) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or("HTTP/1.1"),
        );
        let path = reqwest::Url::parse(target).map_or_else(
            |_| target.to_owned(),
            |url| match url.query() {
                Some(query) => format!("{}?{query}", url.path()),
                None => url.path().to_owned(),
            },
        );
        out.push_str(&format!("{method} {path} {version}\r\n"));
    }
    for line in lines {
        let name = line.split(':').next().unwrap_or_default().trim();
        if ["connection", "proxy-connection", "keep-alive"]
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h))
        {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(rest);
    bytes
}

/// The proxy environment a tool gets: every spelling the tools read.
pub fn proxy_env() -> Vec<(String, String)> {
    let url = format!("http://127.0.0.1:{INSIDE_PORT}");
    [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "npm_config_proxy",
        "npm_config_https_proxy",
        "CARGO_HTTP_PROXY",
        // yarn Berry reads only its own settings.
        "YARN_HTTP_PROXY",
        "YARN_HTTPS_PROXY",
    ]
    .iter()
    .map(|key| (key.to_string(), url.clone()))
    .chain([("NO_PROXY".to_owned(), String::new())])
    .collect()
}

/// Where the proxy's socket and forwarder are inside the sandbox.
pub fn inside(path: &Path) -> String {
    format!(
        "/tmp/egress/{}",
        path.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_goes_on_in_origin_form_and_closes() {
        let head = b"GET http://127.0.0.1:8080/lodash?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nProxy-Connection: keep-alive\r\nConnection: keep-alive\r\nAccept: */*\r\n\r\nBODY";
        assert_eq!(
            String::from_utf8(origin_form(head)).unwrap(),
            "GET /lodash?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAccept: */*\r\nConnection: close\r\n\r\nBODY"
        );
    }
}
