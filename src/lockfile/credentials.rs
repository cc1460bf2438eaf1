//! Credentials for private registries, given to a tool run and to nothing else. Each is a host
//! and a token read, at run time, from one of the worker's environment variables or from a file
//! (a mounted secret). For a run that reaches the network they become two files in the
//! sandbox's fresh HOME: `.npmrc` (`//HOST/:_authToken=...`, read by npm, pnpm and yarn 1) and
//! `.netrc` (`machine HOST`, read by pip, pip-compile, uv, Poetry and Go). The files are
//! written 0600 into a private temporary directory outside the clone, bound read-only, removed
//! when the run ends; the token never enters the tool's environment, a log line or an error
//! (run output is cut of it).

use std::io::Write;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::LockError;

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

/// The credential files of one run; dropping it removes them.
pub struct CredentialFiles {
    _dir: tempfile::TempDir,
    /// (host file, path inside the sandbox)
    pub files_at: Vec<(PathBuf, String)>,
    /// The token values, cut from the run's output.
    pub secrets: Vec<String>,
}

/// Reads every token and writes the run's credential files; `None` with no credential set.
pub fn prepare(
    credentials: &[RegistryCredential],
    home: &str,
) -> Result<Option<CredentialFiles>, LockError> {
    if credentials.is_empty() {
        return Ok(None);
    }
    let mut npmrc = String::new();
    let mut netrc = String::new();
    let mut secrets = Vec::new();
    for credential in credentials {
        check_host(&credential.host)?;
        let token = read_token(credential)?;
        let value = token.expose_secret();
        npmrc.push_str(&format!("//{}/:_authToken={value}\n", credential.host));
        let machine = credential
            .host
            .split(':')
            .next()
            .unwrap_or(&credential.host);
        netrc.push_str(&format!(
            "machine {machine}\nlogin {}\npassword {value}\n",
            credential.login
        ));
        secrets.push(value.to_owned());
    }
    let failed =
        |e: std::io::Error| LockError::Credentials(format!("writing credential files: {e}"));
    let dir = tempfile::Builder::new()
        .prefix("remediator-credentials-")
        .tempdir()
        .map_err(failed)?;
    let mut files_at = Vec::new();
    for (name, text) in [(".npmrc", npmrc), (".netrc", netrc)] {
        let path = dir.path().join(name);
        write_private(&path, &text).map_err(failed)?;
        files_at.push((path, format!("{home}/{name}")));
    }
    Ok(Some(CredentialFiles {
        _dir: dir,
        files_at,
        secrets,
    }))
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

/// A host is a name and maybe a port: anything else would let a setting write more lines into
/// the files than its own.
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
    fn files_hold_the_token_privately_and_bad_settings_are_refused_without_it() {
        let secret = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(secret.path(), "s3cr3t-token\n").unwrap();
        let credential = RegistryCredential {
            host: "registry.internal:8443".to_owned(),
            token_env: None,
            token_file: Some(secret.path().to_path_buf()),
            login: default_login(),
        };
        let files = prepare(std::slice::from_ref(&credential), "/tmp/home")
            .unwrap()
            .unwrap();
        assert_eq!(files.secrets, ["s3cr3t-token"]);
        let npmrc = std::fs::read_to_string(&files.files_at[0].0).unwrap();
        assert_eq!(npmrc, "//registry.internal:8443/:_authToken=s3cr3t-token\n");
        let netrc = std::fs::read_to_string(&files.files_at[1].0).unwrap();
        assert_eq!(
            netrc,
            "machine registry.internal\nlogin token\npassword s3cr3t-token\n"
        );
        assert_eq!(files.files_at[1].1, "/tmp/home/.netrc");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&files.files_at[0].0)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        let injected = RegistryCredential {
            host: "evil\nmachine other".to_owned(),
            ..credential.clone()
        };
        assert!(prepare(&[injected], "/tmp/home").is_err());
        let unset = RegistryCredential {
            token_env: Some("REMEDIATOR_TEST_UNSET_TOKEN_VAR".to_owned()),
            ..credential
        };
        let error = prepare(&[unset], "/tmp/home").err().unwrap().to_string();
        assert!(error.contains("REMEDIATOR_TEST_UNSET_TOKEN_VAR"), "{error}");
        assert!(!error.contains("s3cr3t"), "{error}");
    }
}
