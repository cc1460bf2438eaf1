//! The sandbox against hostile code, as a package manager's lifecycle script or a
//! repository's build configuration would run it: it cannot write outside the work tree, read
//! the worker's environment or its secrets, see the host's processes, or (without network)
//! reach a server on the host; and it is stopped at its time limit.

use std::io::Read;
use std::time::{Duration, Instant};

use remediator::sandbox::reach::Endpoint;
use remediator::sandbox::{Sandbox, SandboxMode, SandboxSettings, ToolRun};

fn sandbox(timeout_secs: u64) -> Sandbox {
    Sandbox::new(settings(timeout_secs), Vec::new())
}

/// Bubblewrap, 30 s of CPU, 2 GiB, no allowed host, the system's CA store.
fn settings(timeout_secs: u64) -> SandboxSettings {
    SandboxSettings {
        mode: SandboxMode::Bubblewrap,
        bwrap: "bwrap".to_owned(),
        timeout_secs,
        cpu_secs: 30,
        memory_mb: 2048,
        max_output_bytes: 65536,
        allowed_hosts: Vec::new(),
        ca_bundle: None,
    }
}

fn shell(work_tree: &std::path::Path, script: &str, network: bool) -> ToolRun {
    ToolRun {
        program: "sh".to_owned(),
        args: vec!["-c".to_owned(), script.to_owned()],
        work_tree: work_tree.to_path_buf(),
        dir: String::new(),
        env: vec![("GIVEN".to_owned(), "only-this".to_owned())],
        network,
        secrets: vec!["s3cret-registry-token".to_owned()],
        read_only: Vec::new(),
        files_at: Vec::new(),
    }
}

#[tokio::test]
async fn hostile_code_in_the_sandbox_reaches_nothing_of_the_worker() {
    let work = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let marker = outside.path().join("escaped");
    // A server on the host the script tries to reach.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!(
        "echo inside > /sandbox/clone/written-inside; \
         echo x > {marker} 2>/dev/null && echo WROTE-OUTSIDE; \
         echo x > /usr/escaped 2>/dev/null && echo WROTE-USR; \
         env; \
         cat /proc/1/environ 2>/dev/null | tr '\\0' '\\n' | grep -q CARGO && echo SAW-HOST-ENV; \
         ls /proc | grep -c '^[0-9]' | sed 's/^/PROCESSES=/'; \
         (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && echo REACHED-HOST; \
         (exec 3<>/dev/tcp/169.254.169.254/80) 2>/dev/null && echo REACHED-METADATA; \
         echo token s3cret-registry-token",
        marker = marker.display()
    );
    // bash for /dev/tcp; sh on Debian is dash.
    let mut run = shell(work.path(), &script, false);
    run.program = "bash".to_owned();
    let ran = sandbox(30).run(&run, "apt-get install bash").await.unwrap();
    let success = ran.success();
    let output = ran.output;
    assert!(success, "{}: {output}", ran.status);
    assert_eq!(
        std::fs::read_to_string(work.path().join("written-inside")).unwrap(),
        "inside\n"
    );
    assert!(!marker.exists(), "wrote outside the work tree");
    for refused in [
        "WROTE-OUTSIDE",
        "WROTE-USR",
        "SAW-HOST-ENV",
        "REACHED-HOST",
        "REACHED-METADATA",
    ] {
        assert!(!output.contains(refused), "{refused}: {output}");
    }
    // Only what the caller gave, besides HOME, PATH and TMPDIR (a run without network gets no
    // trust store settings): nothing of this process's environment (cargo sets CARGO_* for
    // tests) reaches the tool.
    assert!(output.contains("GIVEN=only-this"), "{output}");
    assert!(!output.contains("CARGO_MANIFEST_DIR"), "{output}");
    assert!(!output.contains("CARGO_PKG_NAME"), "{output}");
    assert!(!output.contains("SSL_CERT_FILE"), "{output}");
    assert!(!output.contains("NODE_EXTRA_CA_CERTS"), "{output}");
    assert!(output.contains("HOME=/tmp/home"), "{output}");
    // Its own PID namespace: the shell and its children only.
    let processes: usize = output
        .lines()
        .find_map(|l| l.strip_prefix("PROCESSES="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(processes < 10, "sees the host's processes: {processes}");
    // Secrets the run was given are cut from what is kept of its output.
    assert!(output.contains("token [redacted]"), "{output}");
    let mut buffer = [0u8; 1];
    assert!(
        listener
            .accept()
            .map(|(mut s, _)| s.read(&mut buffer))
            .is_err(),
        "nothing connected to the host's server"
    );
}

#[tokio::test]
async fn a_tool_that_never_ends_is_stopped_at_its_time_limit() {
    let work = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let ran = sandbox(2)
        .run(&shell(work.path(), "sleep 600", false), "")
        .await
        .unwrap();
    assert!(!ran.success());
    assert_eq!(ran.status.to_string(), "timed out after 2 s");
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[tokio::test]
async fn a_missing_bubblewrap_is_refused_with_what_to_do() {
    let mut settings = SandboxSettings {
        mode: SandboxMode::Bubblewrap,
        bwrap: "/nonexistent/bwrap".to_owned(),
        timeout_secs: 5,
        cpu_secs: 5,
        memory_mb: 512,
        max_output_bytes: 1024,
        allowed_hosts: Vec::new(),
        ca_bundle: None,
    };
    let error = Sandbox::new(settings.clone(), Vec::new())
        .check()
        .unwrap_err()
        .to_string();
    assert!(error.contains("apt-get install bubblewrap"), "{error}");
    assert!(error.contains("mode = \"none\""), "{error}");
    settings.mode = SandboxMode::None;
    assert!(Sandbox::new(settings, Vec::new()).check().is_ok());
}

/// A server on the host's loopback, answering every connection with a fixed 200.
fn host_server() -> (u16, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        for stream in listener.incoming().take(4).flatten() {
            use std::io::Write;
            let mut stream = stream;
            let mut buffer = [0u8; 2048];
            let _ = stream.read(&mut buffer);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
            );
        }
    });
    (port, handle)
}

#[tokio::test]
async fn a_tool_with_network_reaches_only_what_the_egress_policy_allows() {
    let work = tempfile::tempdir().unwrap();
    let (port, _server) = host_server();
    let script = format!(
        "echo proxied=$(curl -sS -o /dev/null -w '%{{http_code}}' http://127.0.0.1:{port}/); \
         echo metadata=$(curl -s -o /dev/null -w '%{{http_code}}' http://169.254.169.254/latest/meta-data/); \
         echo direct=$(curl -s --noproxy '*' --max-time 5 -o /dev/null -w '%{{http_code}}' http://127.0.0.1:{port}/)"
    );
    // The default policy: the host's loopback and the metadata address are refused.
    let run = shell(work.path(), &script, true);
    let ran = sandbox(60).run(&run, "").await.unwrap();
    assert!(ran.output.contains("proxied=403"), "{}", ran.output);
    assert!(ran.output.contains("metadata=403"), "{}", ran.output);
    // Around the proxy there is no way out: the namespace has only its own loopback.
    assert!(ran.output.contains("direct=000"), "{}", ran.output);
    assert_eq!(ran.refused.len(), 2, "{:?}", ran.refused);
    assert!(
        ran.refused[0].starts_with(&format!("127.0.0.1:{port} (")),
        "{:?}",
        ran.refused
    );
    assert!(
        ran.refused[1].starts_with("169.254.169.254:80 ("),
        "{:?}",
        ran.refused
    );

    // A configured registry on loopback is reached at its host and port; going around the
    // proxy still goes nowhere, and the same host's other ports (a broker, a database) stay
    // closed.
    let allowing = Sandbox::new(settings(60), vec![Endpoint::new("127.0.0.1", port)]);
    let ran = allowing.run(&run, "").await.unwrap();
    assert!(ran.output.contains("proxied=200"), "{}", ran.output);
    assert!(ran.output.contains("direct=000"), "{}", ran.output);
    assert!(ran.output.contains("metadata=403"), "{}", ran.output);
    let (other_port, _other) = host_server();
    let other = shell(
        work.path(),
        &format!(
            "echo other=$(curl -sS -o /dev/null -w '%{{http_code}}' http://127.0.0.1:{other_port}/)"
        ),
        true,
    );
    let ran = allowing.run(&other, "").await.unwrap();
    assert!(ran.output.contains("other=403"), "{}", ran.output);
    assert!(
        ran.refused[0].starts_with(&format!("127.0.0.1:{other_port} (port {other_port}")),
        "{:?}",
        ran.refused
    );
}

/// An HTTPS registry on loopback, its certificate from a CA of the test's own (written to the
/// returned directory as `ca.pem`, as an operator's `sandbox.ca_bundle`), that answers 200 only
/// to `Authorization: Bearer TOKEN` and counts the requests it let through.
async fn private_https_registry(
    token: &'static str,
) -> (
    u16,
    tempfile::TempDir,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Test private registry CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf_params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    leaf_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "127.0.0.1");
    let leaf = leaf_params.signed_by(&key, &ca, &ca_key).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let authorised = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = authorised.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, counter) = (acceptor.clone(), counter.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buffer = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                let expected = format!("authorization: bearer {}", token.to_ascii_lowercase());
                let (status, body) = if head.contains(&expected) {
                    counter.fetch_add(1, Ordering::SeqCst);
                    ("200 OK", "{\"name\":\"lodash\"}")
                } else {
                    (
                        "401 Unauthorized",
                        "{\"error\":\"authentication required\"}",
                    )
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, dir, authorised)
}

#[tokio::test]
async fn a_private_registry_gets_its_token_from_the_proxy_and_nothing_inside_holds_it() {
    use remediator::sandbox::registry_auth::RegistryAuth;
    use std::sync::atomic::Ordering;
    const TOKEN: &str = "npm_PrivateRegistryToken0123456789";
    let (port, ca_dir, authorised) = private_https_registry(TOKEN).await;
    let sandbox = Sandbox::new(
        SandboxSettings {
            ca_bundle: Some(ca_dir.path().join("ca.pem")),
            ..settings(60)
        },
        vec![Endpoint::new("127.0.0.1", port)],
    );
    let work = tempfile::tempdir().unwrap();
    // The tool asks as npm does; code it runs looks for the token everywhere it can read
    // (the token is put together in the shell, so no command line of the run holds it).
    let (first, second) = TOKEN.split_at(10);
    let script = format!(
        "echo status=$(curl -sS -A 'npm/11.1.0 node/v20' -o body -w '%{{http_code}}' https://127.0.0.1:{port}/lodash); \
         cat body; echo; \
         T=\"{first}\"\"{second}\"; \
         grep -rlF \"$T\" /tmp /etc /sandbox /proc/self/environ 2>/dev/null | sed 's/^/TOKEN-IN-FILE /'; \
         env | grep -qF \"$T\" && echo TOKEN-IN-ENVIRONMENT; \
         echo searched"
    );
    let run = shell(work.path(), &script, true);
    let auth = RegistryAuth::new(
        &format!("127.0.0.1:{port}"),
        "token",
        secrecy::SecretString::from(TOKEN.to_owned()),
    );
    let ran = sandbox
        .run_with_credentials(&run, "", &[auth])
        .await
        .unwrap();
    assert!(ran.output.contains("status=200"), "{}", ran.output);
    assert!(
        ran.output.contains("{\"name\":\"lodash\"}"),
        "{}",
        ran.output
    );
    assert!(ran.output.contains("searched"), "{}", ran.output);
    assert!(!ran.output.contains("TOKEN-IN-"), "{}", ran.output);
    assert_eq!(authorised.load(Ordering::SeqCst), 1);

    // The same request without the credential is refused by the registry: the proxy's header
    // is what let the first one through.
    let ran = sandbox.run(&run, "").await.unwrap();
    assert!(ran.output.contains("status=401"), "{}", ran.output);
    assert_eq!(authorised.load(Ordering::SeqCst), 1);
}
