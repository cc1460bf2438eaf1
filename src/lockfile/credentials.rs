//! Credentials for private registries, given to nothing a tool runs. Each is a host and a
//! token read, at run time, from one of the worker's environment variables or from a file (a
//! mounted secret). For a run that reaches the network they go to the sandbox's egress proxy,
//! which adds them to the requests bound for that registry on their way out
//! ([`crate::sandbox::registry_auth`]): no file, argument or environment variable inside the
//! sandbox holds a token, and the token never enters a log line or an error (run output is cut
//! of it in every encoding).

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

use super::LockError;
use crate::sandbox::registry_auth::RegistryAuth;

#[derive(Debug, Clone, Deserialize)]
pub struct RegistryCredential {
    /// The registry's host name, as in its URL (`npm.internal.example`).
    pub host: String,
    /// The worker's environment variable that holds the token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// A file that holds the token (trailing whitespace ignored).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// The login `.netrc` pairs with the token (basic auth of Python indexes and Go proxies).
    #[serde(default = "default_login")]
    pub login: String,
}

fn default_login() -> String {
    "token".to_owned()
}

/// Every configured credential with its token read now (a rotated secret is picked up by the
/// next run).
pub fn read_all(credentials: &[RegistryCredential]) -> Result<Vec<RegistryAuth>, LockError> {
    credentials
        .iter()
        .map(|credential| {
            check_host(&credential.host)?;
            let token = read_token(credential)?;
            Ok(RegistryAuth::new(
                &credential.host,
                &credential.login,
                token,
            ))
        })
        .collect()
}

/// A host is a name and maybe a port: anything else is a mistake in the setting (a URL, a path,
/// a line break) that would never match a request.
fn check_host(host: &str) -> Result<(), LockError> {
    let ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if ok {
        Ok(())
    } else {
        Err(LockError::Credentials(format!(
            "lockfiles.registry_credentials: host {host:?} is not a host name"
        )))
    }
}

fn read_token(credential: &RegistryCredential) -> Result<SecretString, LockError> {
    let host = &credential.host;
    let token = match (&credential.token_env, &credential.token_file) {
        (Some(var), _) => std::env::var(var).map_err(|_| {
            LockError::Credentials(format!(
                "the token for registry {host} is read from ${var}, which is not set on this worker"
            ))
        })?,
        (None, Some(file)) => std::fs::read_to_string(file).map_err(|e| {
            LockError::Credentials(format!(
                "the token for registry {host} is read from {}: {e}",
                file.display()
            ))
        })?,
        (None, None) => {
            return Err(LockError::Credentials(format!(
                "lockfiles.registry_credentials for {host} names neither token_env nor token_file"
            )));
        }
    };
    let token = token.trim().to_owned();
    if token.is_empty() || token.chars().any(char::is_whitespace) {
        return Err(LockError::Credentials(format!(
            "the token for registry {host} is empty or holds whitespace"
        )));
    }
    Ok(SecretString::from(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_read_for_the_proxy_and_bad_settings_are_refused_without_them() {
        use secrecy::ExposeSecret;
        let secret = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(secret.path(), "s3cr3t-token\n").unwrap();
        let credential = RegistryCredential {
            host: "registry.internal:8443".to_owned(),
            token_env: None,
            token_file: Some(secret.path().to_path_buf()),
            login: default_login(),
        };
        let auths = read_all(std::slice::from_ref(&credential)).unwrap();
        assert_eq!(auths[0].host, "registry.internal");
        assert_eq!(auths[0].port, Some(8443));
        assert_eq!(auths[0].token.expose_secret(), "s3cr3t-token");
        assert!(!format!("{auths:?}").contains("s3cr3t"));

        let injected = RegistryCredential {
            host: "evil\nmachine other".to_owned(),
            ..credential.clone()
        };
        assert!(read_all(&[injected]).is_err());
        let unset = RegistryCredential {
            token_env: Some("REMEDIATOR_TEST_UNSET_TOKEN_VAR".to_owned()),
            ..credential
        };
        let error = read_all(&[unset]).err().unwrap().to_string();
        assert!(error.contains("REMEDIATOR_TEST_UNSET_TOKEN_VAR"), "{error}");
        assert!(!error.contains("s3cr3t"), "{error}");
    }
}
