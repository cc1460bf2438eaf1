//! Verification keys: the configured algorithm, public keys read from PEM files or taken from
//! JWKS entries (each checked to fit that algorithm before it is ever used), and the unverified
//! look at a token's header that picks the key.

use std::path::Path;
use std::str::FromStr;

use anyhow::{Context, bail};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

/// Smallest RSA modulus accepted, in bytes (2048 bits, as NIST and aws-lc require).
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// The algorithms the service can be configured to accept.
pub fn configured_algorithm(name: &str) -> anyhow::Result<Algorithm> {
    match name {
        "HS256" => Ok(Algorithm::HS256),
        "RS256" => Ok(Algorithm::RS256),
        "ES256" => Ok(Algorithm::ES256),
        other => bail!("auth.algorithm `{other}` is not supported; use HS256, RS256 or ES256"),
    }
}

pub fn algorithm_name(algorithm: Algorithm) -> String {
    format!("{algorithm:?}")
}

/// A public key and the `kid` it answers to (`None`: it answers only to tokens without one).
#[derive(Clone, Debug)]
pub struct NamedKey {
    pub kid: Option<String>,
    pub key: DecodingKey,
}

/// The keys a token may be verified with: the one named by its `kid`, or every key when it
/// names none.
pub fn select<'a>(keys: &'a [NamedKey], kid: Option<&str>) -> Vec<&'a DecodingKey> {
    keys.iter()
        .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
        .map(|k| &k.key)
        .collect()
}

/// Reads `auth.public_key_files`; every file must hold a public key fit for `algorithm`.
pub fn load_pem_files(
    paths: &[std::path::PathBuf],
    algorithm: Algorithm,
) -> anyhow::Result<Vec<NamedKey>> {
    let mut keys: Vec<NamedKey> = Vec::with_capacity(paths.len());
    for path in paths {
        let key = load_pem_file(path, algorithm)?;
        let kid = path
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        if let Some(kid) = &kid
            && keys.iter().any(|k| k.kid.as_ref() == Some(kid))
        {
            bail!(
                "two files in auth.public_key_files have the stem `{kid}`, which is their key id; \
                 rename one"
            );
        }
        keys.push(NamedKey { kid, key });
    }
    Ok(keys)
}

fn load_pem_file(path: &Path, algorithm: Algorithm) -> anyhow::Result<DecodingKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading public key file {}", path.display()))?;
    pem_public_key(&text, algorithm).with_context(|| {
        format!(
            "public key file {} cannot verify {} tokens",
            path.display(),
            algorithm_name(algorithm)
        )
    })
}

/// Parses one PEM public key for `algorithm`. Private keys and certificates are refused: the
/// service only ever needs the public half, and a private key on an intake is a key to leak.
pub fn pem_public_key(text: &str, algorithm: Algorithm) -> anyhow::Result<DecodingKey> {
    let label = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("-----BEGIN "))
        .and_then(|rest| rest.strip_suffix("-----"))
        .context("no PEM block (`-----BEGIN PUBLIC KEY-----`) found")?;
    match label {
        "PUBLIC KEY" | "RSA PUBLIC KEY" => {}
        l if l.contains("PRIVATE KEY") => bail!(
            "it holds a private key ({l}); configure the public key only \
             (`openssl pkey -in KEY -pubout`)"
        ),
        "CERTIFICATE" => bail!(
            "it holds a certificate; extract its public key (`openssl x509 -in CERT -pubkey \
             -noout`)"
        ),
        other => bail!("unexpected PEM block `{other}`; expected `PUBLIC KEY`"),
    }
    let key = match algorithm {
        Algorithm::RS256 => DecodingKey::from_rsa_pem(text.as_bytes())
            .map_err(|_| anyhow::anyhow!("it is not an RSA public key"))?,
        Algorithm::ES256 => DecodingKey::from_ec_pem(text.as_bytes())
            .map_err(|_| anyhow::anyhow!("it is not an EC public key"))?,
        other => bail!(
            "public keys are for RS256 or ES256, not {}",
            algorithm_name(other)
        ),
    };
    check_strength(&key, algorithm)?;
    Ok(key)
}

/// Refuses keys the algorithm cannot use (so the mistake shows at startup, not as every token
/// failing): RSA below 2048 bits, EC off the P-256 curve for ES256.
fn check_strength(key: &DecodingKey, algorithm: Algorithm) -> anyhow::Result<()> {
    let jwk = Jwk::from_decoding_key(key, None)
        .map_err(|_| anyhow::anyhow!("the key cannot be read as an RSA or EC public key"))?;
    match (&jwk.algorithm, algorithm) {
        (AlgorithmParameters::RSA(rsa), Algorithm::RS256) => {
            let modulus = base64url_decode(&rsa.n).unwrap_or_default();
            let significant = modulus.iter().skip_while(|b| **b == 0).count();
            if significant < MIN_RSA_MODULUS_BYTES {
                bail!(
                    "the RSA key has {} bits; at least 2048 are required",
                    significant * 8
                );
            }
            Ok(())
        }
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => {
            if ec.curve == EllipticCurve::P256 {
                Ok(())
            } else {
                bail!("the EC key is on {:?}; ES256 needs P-256", ec.curve)
            }
        }
        _ => bail!("the key does not fit {}", algorithm_name(algorithm)),
    }
}

/// Turns one JWKS entry into a key for `algorithm`, or says why it is skipped. Symmetric
/// (`oct`) entries never qualify: a key fetched over the network must be a public one.
pub fn jwk_key(jwk: &Jwk, algorithm: Algorithm) -> Result<NamedKey, String> {
    if let Some(use_) = &jwk.common.public_key_use
        && *use_ != PublicKeyUse::Signature
    {
        return Err("its `use` is not `sig`".into());
    }
    if let Some(ops) = &jwk.common.key_operations
        && !ops.contains(&KeyOperations::Verify)
    {
        return Err("its `key_ops` lack `verify`".into());
    }
    if let Some(alg) = jwk.common.key_algorithm
        && Algorithm::from_str(&alg.to_string()).ok() != Some(algorithm)
    {
        return Err(format!("its `alg` is {alg}"));
    }
    let fits = matches!(
        (&jwk.algorithm, algorithm),
        (AlgorithmParameters::RSA(_), Algorithm::RS256)
            | (AlgorithmParameters::EllipticCurve(_), Algorithm::ES256)
    );
    if !fits {
        return Err(format!(
            "its key type does not fit {}",
            algorithm_name(algorithm)
        ));
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("it is malformed ({e})"))?;
    check_strength(&key, algorithm).map_err(|e| e.to_string())?;
    Ok(NamedKey {
        kid: jwk.common.key_id.clone(),
        key,
    })
}

/// The parts of a token's header that choose how it is verified. Read before any signature
/// check, so nothing here is trusted: `alg` is only compared with the configured algorithm and
/// `kid` only used to look a key up.
#[derive(Debug, PartialEq, Eq)]
pub struct UnverifiedHeader {
    pub alg: String,
    pub kid: Option<String>,
}

/// Splits `header.payload.signature` and reads the header.
pub fn peek_header(token: &str) -> Result<UnverifiedHeader, &'static str> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the token is invalid: a JWT has three dot-separated parts");
    };
    let bytes =
        base64url_decode(header).ok_or("the token is invalid: its header is not base64url")?;
    let header: Map<String, Value> = serde_json::from_slice(&bytes)
        .map_err(|_| "the token is invalid: its header is not a JSON object")?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or("the token is invalid: its header names no algorithm (`alg`)")?;
    let kid = match header.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err("the token is invalid: its `kid` is not a string"),
    };
    Ok(UnverifiedHeader {
        alg: alg.to_owned(),
        kid,
    })
}

/// Unpadded base64url (RFC 7515 section 2); `None` on any other character.
fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in text.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    // A single leftover character cannot encode a byte.
    (bits < 6).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_decodes_like_rfc_4648() {
        assert_eq!(base64url_decode("").unwrap(), b"");
        assert_eq!(base64url_decode("Zg").unwrap(), b"f");
        assert_eq!(base64url_decode("Zm8").unwrap(), b"fo");
        assert_eq!(base64url_decode("Zm9v").unwrap(), b"foo");
        assert_eq!(base64url_decode("Zm9vYg==").unwrap(), b"foob");
        assert_eq!(base64url_decode("-_8").unwrap(), vec![0xfb, 0xff]);
        assert!(base64url_decode("Zm9v+").is_none());
        assert!(base64url_decode("Z").is_none());
    }

    #[test]
    fn the_header_is_read_without_trusting_it() {
        // {"alg":"none","typ":"JWT"}
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.e30.";
        assert_eq!(
            peek_header(none).unwrap(),
            UnverifiedHeader {
                alg: "none".into(),
                kid: None
            }
        );
        // {"alg":"RS256","kid":"k1"}
        let with_kid = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.e30.c2ln";
        assert_eq!(peek_header(with_kid).unwrap().kid.as_deref(), Some("k1"));
        for bad in [
            "garbage",
            "a.b",
            "a.b.c.d",
            "!!!.e30.",
            "e30.e30.",
            "WzFd.e30.",
        ] {
            let err = peek_header(bad).unwrap_err();
            assert!(err.contains("invalid"), "{bad}: {err}");
        }
    }

    #[test]
    fn only_the_three_algorithms_are_configurable() {
        assert_eq!(configured_algorithm("RS256").unwrap(), Algorithm::RS256);
        assert_eq!(configured_algorithm("ES256").unwrap(), Algorithm::ES256);
        let err = configured_algorithm("none").unwrap_err().to_string();
        assert!(err.contains("HS256, RS256 or ES256"), "{err}");
        assert!(configured_algorithm("PS256").is_err());
    }

    #[test]
    fn private_keys_and_certificates_are_refused_with_the_command_that_fixes_it() {
        let private =
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n";
        let err = pem_public_key(private, Algorithm::RS256)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("private key") && err.contains("-pubout"),
            "{err}"
        );
        let cert = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n";
        let err = pem_public_key(cert, Algorithm::ES256)
            .unwrap_err()
            .to_string();
        assert!(err.contains("x509"), "{err}");
        let err = pem_public_key("hello", Algorithm::ES256)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no PEM block"), "{err}");
    }
}
