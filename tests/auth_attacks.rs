//! Token attacks against the real HTTP intake (real Postgres), one test each: every forged,
//! stale or misdirected token is answered 401/403 and creates nothing; another organisation's
//! token sees nothing. Keys are made by the `openssl` CLI; the identity provider's JWKS is a
//! wiremock server.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use remediator::config::Settings;
use remediator::db::schema::operations;
use serde_json::{Value, json};
use support::app::{Catalog, TestApp, seed_catalog, test_settings};
use uuid::Uuid;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const REPO: &str = "https://github.com/acme/web.git";
const ISSUER: &str = "https://idp.example.test/";
const AUDIENCE: &str = "remediator";
const FULL_SCOPE: &str = "remediations:write operations:read";

struct KeyPair {
    private_pem: String,
    public_pem: String,
    /// The public key's file; its stem is the key id.
    public_file: PathBuf,
}

impl KeyPair {
    fn kid(&self) -> String {
        self.public_file
            .file_stem()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    }
}

struct Keys {
    _dir: tempfile::TempDir,
    rsa: KeyPair,
    /// A second RSA key: the attacker's, or the provider's next key after a rotation.
    rsa_other: KeyPair,
    ec: KeyPair,
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run the openssl CLI");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn generate(dir: &std::path::Path, name: &str, algorithm: &[&str]) -> KeyPair {
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pem"));
    let mut args = vec!["genpkey", "-out", private.to_str().unwrap()];
    args.extend_from_slice(algorithm);
    openssl(&args);
    openssl(&[
        "pkey",
        "-in",
        private.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    KeyPair {
        private_pem: std::fs::read_to_string(&private).unwrap(),
        public_pem: std::fs::read_to_string(&public).unwrap(),
        public_file: public,
    }
}

/// Key generation is the slow part; every test shares one set.
fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let rsa_args = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];
        let rsa = generate(dir.path(), "rsa-2024", &rsa_args);
        let rsa_other = generate(dir.path(), "rsa-2025", &rsa_args);
        let ec = generate(
            dir.path(),
            "ec-2024",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        );
        Keys {
            _dir: dir,
            rsa,
            rsa_other,
            ec,
        }
    })
}

fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Claims a well-behaved identity provider would issue for `org`.
fn claims(org: Uuid) -> Value {
    json!({
        "sub": "ci-bot", "iss": ISSUER, "aud": AUDIENCE, "iat": now(), "exp": now() + 600,
        "org_id": org, "scope": FULL_SCOPE,
    })
}

fn sign(algorithm: Algorithm, private_pem: &str, kid: Option<String>, claims: &Value) -> String {
    let key = match algorithm {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(private_pem.as_bytes()).unwrap(),
        Algorithm::HS256 => EncodingKey::from_secret(private_pem.as_bytes()).unwrap(),
        other => panic!("{other:?}"),
    };
    let mut header = Header::new(algorithm);
    header.kid = kid;
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

fn rs256(kid: Option<String>, claims: &Value) -> String {
    sign(Algorithm::RS256, &keys().rsa.private_pem, kid, claims)
}

/// RS256 with the public key in a PEM file, issuer and audience configured.
async fn settings_rs256_pem() -> Settings {
    let mut s = test_settings().await;
    s.relay.enabled = false;
    s.auth.algorithm = "RS256".into();
    s.auth.jwt_secret = None;
    s.auth.public_key_files = vec![keys().rsa.public_file.clone()];
    s.auth.issuer = ISSUER.into();
    s.auth.audience = AUDIENCE.into();
    s.auth.leeway_secs = 5;
    s
}

async fn rs256_app() -> (TestApp, Catalog) {
    let app = TestApp::spawn_with(settings_rs256_pem().await).await;
    let c = seed_catalog(&app, REPO).await;
    (app, c)
}

/// RS256 with keys from the JWKS served by `server` at `/jwks.json`.
async fn jwks_app(server: &MockServer, min_refresh_secs: u64) -> (TestApp, Catalog) {
    let mut s = settings_rs256_pem().await;
    s.auth.public_key_files.clear();
    s.auth.jwks_url = format!("{}/jwks.json", server.uri());
    s.auth.jwks_min_refresh_secs = min_refresh_secs;
    let app = TestApp::spawn_with(s).await;
    let c = seed_catalog(&app, REPO).await;
    (app, c)
}

/// The JWKS a provider publishes for these RSA key pairs (built from the private keys).
fn jwks(pairs: &[&KeyPair]) -> Value {
    let keys = pairs
        .iter()
        .map(|pair| {
            let private = EncodingKey::from_rsa_pem(pair.private_pem.as_bytes()).unwrap();
            let mut jwk = Jwk::from_encoding_key(&private, Algorithm::RS256).unwrap();
            jwk.common.key_id = Some(pair.kid());
            jwk.common.public_key_use = Some(PublicKeyUse::Signature);
            jwk
        })
        .collect();
    serde_json::to_value(JwkSet { keys }).unwrap()
}

async fn operation_count(app: &TestApp) -> i64 {
    let mut conn = app.pool.get().await.unwrap();
    operations::table
        .count()
        .get_result(&mut conn)
        .await
        .unwrap()
}

/// POSTs a valid remediation request with `token` and checks the refusal; nothing is created.
async fn assert_refused(
    app: &TestApp,
    c: &Catalog,
    token: Option<&str>,
    status: u16,
    code: i64,
    needle: &str,
) {
    let before = operation_count(app).await;
    let body = json!({"assessment_id": c.affected}).to_string();
    let (got_status, got) = app.post_remediation(token, &body).await;
    assert_eq!(got_status, status, "{got}");
    assert_eq!(got["code"], code, "{got}");
    let message = got["message"].as_str().unwrap();
    assert!(
        message.contains(needle),
        "{message:?} should say {needle:?}"
    );
    assert!(got["details"].is_array(), "{got}");
    // The polling endpoints refuse it the same way.
    let (list_status, list) = app.get_json(token, "/v1/operations").await;
    if status == 401 || status == 503 {
        assert_eq!(list_status, status, "{list}");
    }
    assert_eq!(
        operation_count(app).await,
        before,
        "a refused token created nothing"
    );
}

async fn assert_accepted(app: &TestApp, c: &Catalog, token: &str) -> String {
    let body = json!({"assessment_id": c.affected}).to_string();
    let (status, got) = app.post_remediation(Some(token), &body).await;
    assert_eq!(status, 200, "{got}");
    got["operation_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_good_rs256_token_is_accepted_and_its_kid_must_name_the_file() {
    let (app, c) = rs256_app().await;
    assert_accepted(&app, &c, &rs256(Some(keys().rsa.kid()), &claims(c.org))).await;
    // Without a kid the token is tried against every configured key.
    assert_accepted(&app, &c, &rs256(None, &claims(c.org))).await;
    // A kid that names no configured file is refused even though the signature would verify.
    let err = app
        .post_remediation(
            Some(&rs256(Some("rsa-unknown".into()), &claims(c.org))),
            &json!({"assessment_id": c.affected}).to_string(),
        )
        .await;
    assert_eq!(
        (err.0, err.1["code"].as_i64()),
        (401, Some(16)),
        "{}",
        err.1
    );
    assert!(err.1["message"].as_str().unwrap().contains("`kid`"));
    app.stop().await;
}

#[tokio::test]
async fn a_good_es256_token_is_accepted_and_an_rs256_one_is_not() {
    let mut s = settings_rs256_pem().await;
    s.auth.algorithm = "ES256".into();
    s.auth.public_key_files = vec![keys().ec.public_file.clone()];
    let app = TestApp::spawn_with(s).await;
    let c = seed_catalog(&app, REPO).await;
    let rs = rs256(None, &claims(c.org));
    assert_refused(&app, &c, Some(&rs), 401, 16, "`RS256` is not accepted").await;
    let es = sign(
        Algorithm::ES256,
        &keys().ec.private_pem,
        Some(keys().ec.kid()),
        &claims(c.org),
    );
    assert_accepted(&app, &c, &es).await;
    app.stop().await;
}

#[tokio::test]
async fn attack_no_token() {
    let (app, c) = rs256_app().await;
    assert_refused(&app, &c, None, 401, 16, "missing bearer token").await;
    app.stop().await;
}

#[tokio::test]
async fn attack_malformed_tokens() {
    let (app, c) = rs256_app().await;
    let good = rs256(None, &claims(c.org));
    let (header, rest) = good.split_once('.').unwrap();
    let cases = [
        ("garbage".to_owned(), "three dot-separated parts"),
        (format!("{good}.extra"), "three dot-separated parts"),
        (format!("!!{header}.{rest}"), "not base64url"),
        (format!("{}.{rest}", b64url(b"[1,2]")), "not a JSON object"),
        (
            format!("{}.{rest}", b64url(b"{\"typ\":\"JWT\"}")),
            "no algorithm",
        ),
        // Valid header, payload that is not JSON, signature of something else.
        (format!("{header}.bm90LWpzb24.AAAA"), "invalid"),
    ];
    for (token, needle) in cases {
        assert_refused(&app, &c, Some(&token), 401, 16, needle).await;
    }
    // Not the Bearer scheme at all.
    let response = app
        .http
        .get(format!("{}/v1/operations", app.base_url))
        .header("authorization", format!("Basic {good}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn attack_alg_none() {
    let (app, c) = rs256_app().await;
    let header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64url(claims(c.org).to_string().as_bytes());
    for token in [
        format!("{header}.{payload}."),
        // Same with a signature copied from a genuine token.
        format!(
            "{header}.{payload}.{}",
            rs256(None, &claims(c.org)).rsplit('.').next().unwrap()
        ),
    ] {
        assert_refused(&app, &c, Some(&token), 401, 16, "`none` is not accepted").await;
    }
    // Other spellings fare no better.
    let none_upper = format!("{}.{payload}.", b64url(br#"{"alg":"NONE"}"#));
    assert_refused(&app, &c, Some(&none_upper), 401, 16, "not accepted").await;
    app.stop().await;
}

#[tokio::test]
async fn attack_hs256_signed_with_the_rsa_public_key_as_secret() {
    let (app, c) = rs256_app().await;
    // The classic key confusion: the public key is public, so an attacker can HMAC with it.
    for secret in [
        keys().rsa.public_pem.clone(),
        keys().rsa.public_pem.trim_end().to_owned(),
    ] {
        let token = sign(Algorithm::HS256, &secret, None, &claims(c.org));
        assert_refused(&app, &c, Some(&token), 401, 16, "`HS256` is not accepted").await;
        let with_kid = sign(
            Algorithm::HS256,
            &secret,
            Some(keys().rsa.kid()),
            &claims(c.org),
        );
        assert_refused(&app, &c, Some(&with_kid), 401, 16, "only RS256").await;
    }
    app.stop().await;
}

#[tokio::test]
async fn attack_expired_token() {
    let (app, c) = rs256_app().await;
    let mut stale = claims(c.org);
    stale["exp"] = json!(now() - 60); // beyond the 5 s leeway
    assert_refused(&app, &c, Some(&rs256(None, &stale)), 401, 16, "expired").await;
    // `exp` is required: a token that never expires is refused.
    let mut eternal = claims(c.org);
    eternal.as_object_mut().unwrap().remove("exp");
    assert_refused(&app, &c, Some(&rs256(None, &eternal)), 401, 16, "`exp`").await;
    let mut odd = claims(c.org);
    odd["exp"] = json!("tomorrow");
    assert_refused(&app, &c, Some(&rs256(None, &odd)), 401, 16, "`exp`").await;
    // Within the leeway it still counts as valid (clock skew).
    let mut skewed = claims(c.org);
    skewed["exp"] = json!(now() - 1);
    assert_accepted(&app, &c, &rs256(None, &skewed)).await;
    app.stop().await;
}

#[tokio::test]
async fn attack_token_not_yet_valid() {
    let (app, c) = rs256_app().await;
    let mut early = claims(c.org);
    early["nbf"] = json!(now() + 300);
    assert_refused(
        &app,
        &c,
        Some(&rs256(None, &early)),
        401,
        16,
        "not valid yet",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn attack_wrong_issuer() {
    let (app, c) = rs256_app().await;
    let mut foreign = claims(c.org);
    foreign["iss"] = json!("https://evil.example.test/");
    assert_refused(&app, &c, Some(&rs256(None, &foreign)), 401, 16, "issuer").await;
    // A configured issuer is required, not only checked when present.
    let mut none = claims(c.org);
    none.as_object_mut().unwrap().remove("iss");
    assert_refused(&app, &c, Some(&rs256(None, &none)), 401, 16, "`iss`").await;
    app.stop().await;
}

#[tokio::test]
async fn attack_wrong_audience() {
    let (app, c) = rs256_app().await;
    let mut other = claims(c.org);
    other["aud"] = json!("another-service");
    assert_refused(&app, &c, Some(&rs256(None, &other)), 401, 16, "audience").await;
    let mut none = claims(c.org);
    none.as_object_mut().unwrap().remove("aud");
    assert_refused(&app, &c, Some(&rs256(None, &none)), 401, 16, "`aud`").await;
    // An audience list that includes ours is fine.
    let mut list = claims(c.org);
    list["aud"] = json!(["another-service", AUDIENCE]);
    assert_accepted(&app, &c, &rs256(None, &list)).await;
    app.stop().await;
}

#[tokio::test]
async fn attack_token_signed_by_another_key_under_a_known_kid() {
    let (app, c) = rs256_app().await;
    let forged = sign(
        Algorithm::RS256,
        &keys().rsa_other.private_pem,
        Some(keys().rsa.kid()),
        &claims(c.org),
    );
    assert_refused(&app, &c, Some(&forged), 401, 16, "signature does not match").await;
    app.stop().await;
}

#[tokio::test]
async fn attack_unknown_kid_refreshes_the_jwks_once_then_refuses() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/jwks.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(jwks(&[&keys().rsa])))
        // The first use, then one refresh for the unknown kid; the next unknown kid within
        // jwks_min_refresh_secs does not fetch again.
        .expect(2)
        .mount(&server)
        .await;
    let (app, c) = jwks_app(&server, 2).await;
    assert_accepted(&app, &c, &rs256(Some(keys().rsa.kid()), &claims(c.org))).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let stranger = sign(
        Algorithm::RS256,
        &keys().rsa_other.private_pem,
        Some(keys().rsa_other.kid()),
        &claims(c.org),
    );
    for _ in 0..3 {
        assert_refused(
            &app,
            &c,
            Some(&stranger),
            401,
            16,
            "has no key with its key id",
        )
        .await;
    }
    app.stop().await;
    server.verify().await;
}

#[tokio::test]
async fn attack_tampered_payload() {
    let (app, c) = rs256_app().await;
    // A genuine token for the other organisation, re-pointed at ours after signing.
    let genuine = rs256(None, &claims(c.other_org));
    let parts: Vec<&str> = genuine.split('.').collect();
    let tampered_payload = b64url(claims(c.org).to_string().as_bytes());
    let tampered = format!("{}.{tampered_payload}.{}", parts[0], parts[2]);
    assert_refused(
        &app,
        &c,
        Some(&tampered),
        401,
        16,
        "signature does not match",
    )
    .await;
    // Stripping the signature does not help either.
    let unsigned = format!("{}.{tampered_payload}.", parts[0]);
    assert_refused(&app, &c, Some(&unsigned), 401, 16, "invalid").await;
    app.stop().await;
}

#[tokio::test]
async fn attack_missing_scope() {
    let (app, c) = rs256_app().await;
    let mut read_only = claims(c.org);
    read_only["scope"] = json!("operations:read");
    assert_refused(
        &app,
        &c,
        Some(&rs256(None, &read_only)),
        403,
        7,
        "remediations:write",
    )
    .await;
    let mut no_scope = claims(c.org);
    no_scope.as_object_mut().unwrap().remove("scope");
    assert_refused(
        &app,
        &c,
        Some(&rs256(None, &no_scope)),
        403,
        7,
        "remediations:write",
    )
    .await;
    let mut write_only = claims(c.org);
    write_only["scope"] = json!(["remediations:write"]);
    let token = rs256(None, &write_only);
    for path in [
        "/v1/operations".to_owned(),
        format!("/v1/operations/{}", Uuid::new_v4()),
    ] {
        let (status, body) = app.get_json(Some(&token), &path).await;
        assert_eq!((status, body["code"].as_i64()), (403, Some(7)), "{body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("operations:read")
        );
    }
    app.stop().await;
}

/// Replaces every UUID in an error body, so two answers can be compared for their shape.
fn without_ids(body: &Value, ids: &[Uuid]) -> String {
    ids.iter().fold(body.to_string(), |text, id| {
        text.replace(&id.to_string(), "<id>")
    })
}

#[tokio::test]
async fn attack_another_organisations_token_sees_nothing_on_any_endpoint() {
    let (app, c) = rs256_app().await;
    let ours = rs256(None, &claims(c.org));
    let op = assert_accepted(&app, &c, &ours).await;
    let op: Uuid = op.parse().unwrap();
    let theirs = rs256(None, &claims(c.other_org));
    let missing = Uuid::new_v4();

    // POST: our assessment answers exactly like one that does not exist.
    let (status, foreign) = app
        .post_remediation(
            Some(&theirs),
            &json!({"assessment_id": c.affected}).to_string(),
        )
        .await;
    let (missing_status, absent) = app
        .post_remediation(
            Some(&theirs),
            &json!({"assessment_id": missing}).to_string(),
        )
        .await;
    assert_eq!((status, missing_status), (404, 404), "{foreign} {absent}");
    assert_eq!(
        without_ids(&foreign, &[c.affected]),
        without_ids(&absent, &[missing])
    );

    // GET one: our operation answers exactly like one that does not exist.
    let (status, foreign) = app
        .get_json(Some(&theirs), &format!("/v1/operations/{op}"))
        .await;
    let (missing_status, absent) = app
        .get_json(Some(&theirs), &format!("/v1/operations/{missing}"))
        .await;
    assert_eq!((status, missing_status), (404, 404), "{foreign} {absent}");
    assert_eq!(
        without_ids(&foreign, &[op]),
        without_ids(&absent, &[missing])
    );

    // GET list: empty, with or without a filter naming our assessment.
    let empty = json!({"operations": [], "pagination": {"total_count": 0, "page": 0, "total_pages": 0, "page_size": 50}});
    for path in [
        "/v1/operations".to_owned(),
        format!(
            "/v1/operations?resource_type=assessment&resource_id={}",
            c.affected
        ),
    ] {
        let (status, body) = app.get_json(Some(&theirs), &path).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, empty, "{path}");
    }

    // Our own token still sees it: the wall is the organisation, not a broken endpoint.
    let (status, body) = app
        .get_json(Some(&ours), &format!("/v1/operations/{op}"))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = app.get_json(Some(&ours), "/v1/operations").await;
    assert_eq!(body["pagination"]["total_count"], 1);
    assert_eq!(operation_count(&app).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_failing_jwks_endpoint_never_lets_a_token_through() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/jwks.json"))
        .respond_with(ResponseTemplate::new(500).set_body_string("boom"))
        .mount(&server)
        .await;
    let (app, c) = jwks_app(&server, 30).await;
    let token = rs256(Some(keys().rsa.kid()), &claims(c.org));
    // Never fetched: the service cannot tell, so it says "unavailable", not "accepted".
    assert_refused(&app, &c, Some(&token), 503, 14, "could not be fetched yet").await;
    let without_kid = rs256(None, &claims(c.org));
    assert_refused(&app, &c, Some(&without_kid), 503, 14, "JWKS").await;
    // Rate-limited: the failed fetch is not retried on every request.
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_jwks_that_fails_after_a_good_fetch_keeps_the_cached_keys_and_refuses_unknown_kids() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/jwks.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(jwks(&[&keys().rsa])))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/jwks.json"))
        .respond_with(ResponseTemplate::new(503))
        .expect(1)
        .mount(&server)
        .await;
    let (app, c) = jwks_app(&server, 1).await;
    let known = rs256(Some(keys().rsa.kid()), &claims(c.org));
    let op = assert_accepted(&app, &c, &known).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // A token for a key the cache does not hold: the refetch fails, so it cannot be verified.
    let rotated = sign(
        Algorithm::RS256,
        &keys().rsa_other.private_pem,
        Some(keys().rsa_other.kid()),
        &claims(c.org),
    );
    let (status, body) = app
        .post_remediation(
            Some(&rotated),
            &json!({"assessment_id": c.affected}).to_string(),
        )
        .await;
    assert_eq!((status, body["code"].as_i64()), (401, Some(16)), "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("cannot verify the token now"),
        "{body}"
    );
    // The cached key still verifies its own tokens.
    let (status, body) = app
        .get_json(Some(&known), &format!("/v1/operations/{op}"))
        .await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
    server.verify().await;
}

#[tokio::test]
async fn the_jwks_is_cached_across_requests() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/jwks.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(jwks(&[&keys().rsa])))
        .expect(1)
        .mount(&server)
        .await;
    let (app, c) = jwks_app(&server, 0).await;
    let with_kid = rs256(Some(keys().rsa.kid()), &claims(c.org));
    let without_kid = rs256(None, &claims(c.org));
    let op = assert_accepted(&app, &c, &with_kid).await;
    let requests = (0..6).map(|i| {
        let token = if i % 2 == 0 { &with_kid } else { &without_kid };
        app.get_json(Some(token), "/v1/operations")
    });
    for (status, body) in futures_util::future::join_all(requests).await {
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["operations"][0]["id"], op);
    }
    app.stop().await;
    server.verify().await;
}

#[tokio::test]
async fn the_jwks_is_refetched_when_a_token_names_a_rotated_in_key() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/jwks.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(jwks(&[&keys().rsa])))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/jwks.json"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(jwks(&[&keys().rsa, &keys().rsa_other])),
        )
        .expect(1)
        .mount(&server)
        .await;
    let (app, c) = jwks_app(&server, 1).await;
    let old = rs256(Some(keys().rsa.kid()), &claims(c.org));
    let (status, body) = app.get_json(Some(&old), "/v1/operations").await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let new = sign(
        Algorithm::RS256,
        &keys().rsa_other.private_pem,
        Some(keys().rsa_other.kid()),
        &claims(c.org),
    );
    assert_accepted(&app, &c, &new).await;
    let (status, body) = app.get_json(Some(&old), "/v1/operations").await;
    assert_eq!(status, 200, "the old key is still published: {body}");
    app.stop().await;
    server.verify().await;
}

#[tokio::test]
async fn the_jwks_fetch_refuses_redirects_to_another_host_and_oversized_documents() {
    let elsewhere = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(jwks(&[&keys().rsa])))
        .expect(0)
        .mount(&elsewhere)
        .await;
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/jwks.json"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", format!("{}/jwks.json", elsewhere.uri())),
        )
        .mount(&server)
        .await;
    let (app, c) = jwks_app(&server, 30).await;
    let token = rs256(Some(keys().rsa.kid()), &claims(c.org));
    assert_refused(&app, &c, Some(&token), 503, 14, "JWKS").await;
    app.stop().await;
    elsewhere.verify().await;

    let big = MockServer::start().await;
    let mut document = jwks(&[&keys().rsa]);
    document["padding"] = json!("x".repeat(2 * 1024 * 1024));
    Mock::given(method("GET"))
        .and(path("/jwks.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(document))
        .mount(&big)
        .await;
    let (app, c) = jwks_app(&big, 30).await;
    let token = rs256(Some(keys().rsa.kid()), &claims(c.org));
    assert_refused(&app, &c, Some(&token), 503, 14, "JWKS").await;
    app.stop().await;
}

#[tokio::test]
async fn the_token_command_refuses_to_mint_for_public_key_algorithms() {
    let s = settings_rs256_pem().await;
    let err = remediator::api::auth::mint_token(
        &s.auth,
        remediator::lifecycle::OrganizationId::new_random(),
        "me",
        &["operations:read".to_owned()],
        Duration::from_secs(60),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("HS256 tokens only") && err.contains("RS256"),
        "{err}"
    );
}
