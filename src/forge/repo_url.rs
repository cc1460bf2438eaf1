//! Repository URL parsing and validation. A repository URL arrives in a request, so it is
//! untrusted: it must name a repository on a host we serve, carry no credentials (tokens are
//! added by git's credential callback, never written into a URL), and be unable to smuggle git
//! options or remote-helper transports (`ext::`) into the git layer.

use super::settings::UrlPolicy;

/// Longer than any real repository URL; stops pathological input early.
const MAX_URL_LEN: usize = 2048;

/// The transport a repository URL asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepoScheme {
    Https,
    /// `ssh://` and the scp-like `git@host:owner/name.git` form.
    Ssh,
    /// Only when [`UrlPolicy::allow_http`] is set.
    Http,
    /// Only when [`UrlPolicy::allow_file`] is set.
    File,
}

impl RepoScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            RepoScheme::Https => "https",
            RepoScheme::Ssh => "ssh",
            RepoScheme::Http => "http",
            RepoScheme::File => "file",
        }
    }

    fn default_port(self) -> Option<u16> {
        match self {
            RepoScheme::Https => Some(443),
            RepoScheme::Ssh => Some(22),
            RepoScheme::Http => Some(80),
            RepoScheme::File => None,
        }
    }
}

/// A validated repository URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepositoryUrl {
    pub scheme: RepoScheme,
    /// Authority including a non-default port, lowercase: "github.com", "127.0.0.1:8080".
    /// Empty for `file://`.
    pub host: String,
    /// Repository path without leading '/' and without a trailing ".git": "owner/name",
    /// "group/subgroup/name", or for `file://` the absolute path minus its leading '/'.
    pub path: String,
    /// The ssh user ("git" in `git@github.com:o/r.git`); never set for https/http.
    user: Option<String>,
    raw: String,
}

/// Why a repository URL was refused. Messages never repeat the URL itself, which may hold a
/// credential the caller should not have sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepoUrlError {
    #[error(
        "repository URL scheme {scheme} is not allowed; set git.allow_{scheme} = true for local use only"
    )]
    SchemeNotAllowed { scheme: &'static str },
    #[error(
        "repository URL scheme {0} is not supported; use https://HOST/OWNER/NAME or ssh://git@HOST/OWNER/NAME.git"
    )]
    UnsupportedScheme(String),
    #[error(
        "repository URL must not carry credentials; remove the user/password from the URL and configure the token for this host in its [[forges]] entry"
    )]
    Credentials,
    #[error("repository URL is invalid: {0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> RepoUrlError {
    RepoUrlError::Invalid(message.into())
}

impl RepositoryUrl {
    /// Parses and validates `url`. Accepts `https://host/owner/name(.git)`,
    /// `ssh://[user@]host[:port]/owner/name.git`, scp-like `user@host:owner/name.git`, and
    /// `http://` / `file://` only when `policy` allows them.
    pub fn parse(url: &str, policy: &UrlPolicy) -> Result<Self, RepoUrlError> {
        if url.is_empty() {
            return Err(invalid("it is empty"));
        }
        if url.len() > MAX_URL_LEN {
            return Err(invalid(format!("it is longer than {MAX_URL_LEN} bytes")));
        }
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("it contains whitespace or control characters"));
        }
        if url.starts_with('-') {
            return Err(invalid("it must not start with '-'"));
        }
        if url.contains('?') || url.contains('#') {
            return Err(invalid(
                "it must not contain a query ('?') or fragment ('#')",
            ));
        }

        if let Some((scheme, rest)) = url.split_once("://") {
            let scheme = scheme.to_ascii_lowercase();
            let parsed = match scheme.as_str() {
                "https" => parse_hierarchical(RepoScheme::Https, rest)?,
                "ssh" => parse_hierarchical(RepoScheme::Ssh, rest)?,
                "http" if policy.allow_http => parse_hierarchical(RepoScheme::Http, rest)?,
                "http" => return Err(RepoUrlError::SchemeNotAllowed { scheme: "http" }),
                "file" if policy.allow_file => parse_file(rest)?,
                "file" => return Err(RepoUrlError::SchemeNotAllowed { scheme: "file" }),
                other => return Err(RepoUrlError::UnsupportedScheme(printable_scheme(other))),
            };
            return Ok(Self {
                raw: url.to_owned(),
                ..parsed
            });
        }
        if url.contains("::") {
            // git's remote-helper syntax (`ext::cmd`, `fd::0`) runs commands or reads fds.
            return Err(RepoUrlError::UnsupportedScheme(
                "remote helper (NAME::)".to_owned(),
            ));
        }
        let parsed = parse_scp_like(url)?;
        Ok(Self {
            raw: url.to_owned(),
            ..parsed
        })
    }

    /// The URL exactly as given (validated); what git should fetch from and push to.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The ssh user named in the URL, if any.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Splits the path into owner (everything before the last segment, so GitLab subgroups
    /// stay together) and repository name. `None` for a single-segment path.
    pub fn owner_and_name(&self) -> Option<(&str, &str)> {
        self.path.rsplit_once('/')
    }
}

/// Echoes a refused scheme only when it is short and plainly a scheme name.
fn printable_scheme(scheme: &str) -> String {
    let plain = !scheme.is_empty()
        && scheme.len() <= 16
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if plain {
        scheme.to_owned()
    } else {
        "(unrecognised)".to_owned()
    }
}

fn parse_hierarchical(scheme: RepoScheme, rest: &str) -> Result<RepositoryUrl, RepoUrlError> {
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, ""),
    };
    let (user, host_port) = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => {
            // A user name in an https URL is how tokens get pasted into URLs; refuse it
            // outright. For ssh a plain user name is normal, a password is not.
            if scheme != RepoScheme::Ssh || userinfo.contains(':') {
                return Err(RepoUrlError::Credentials);
            }
            (Some(validate_user(userinfo)?), host_port)
        }
        None => (None, authority),
    };
    let host = normalize_host(host_port, scheme)?;
    let path = normalize_path(path)?;
    Ok(RepositoryUrl {
        scheme,
        host,
        path,
        user,
        raw: String::new(),
    })
}

fn parse_file(rest: &str) -> Result<RepositoryUrl, RepoUrlError> {
    let path = if rest.starts_with('/') {
        rest
    } else if let Some(path) = rest.strip_prefix("localhost/") {
        path
    } else {
        return Err(invalid(
            "file URLs must name a local absolute path: file:///path/to/repo.git",
        ));
    };
    Ok(RepositoryUrl {
        scheme: RepoScheme::File,
        host: String::new(),
        path: normalize_path(path)?,
        user: None,
        raw: String::new(),
    })
}

fn parse_scp_like(url: &str) -> Result<RepositoryUrl, RepoUrlError> {
    let not_a_url = || {
        invalid(
            "it is not a URL; use https://HOST/OWNER/NAME, ssh://git@HOST/OWNER/NAME.git or git@HOST:OWNER/NAME.git",
        )
    };
    let (left, path) = url.split_once(':').ok_or_else(not_a_url)?;
    if left.contains('/') {
        // git reads this as a local path, which is never acceptable here.
        return Err(not_a_url());
    }
    if path.contains('@') {
        // "user:password@host:path" splits at the password's colon.
        return Err(RepoUrlError::Credentials);
    }
    let (user, host) = match left.rsplit_once('@') {
        Some((user, host)) => (Some(validate_user(user)?), host),
        None => (None, left),
    };
    if host.is_empty() {
        return Err(not_a_url());
    }
    validate_hostname(host)?;
    Ok(RepositoryUrl {
        scheme: RepoScheme::Ssh,
        host: host.to_ascii_lowercase(),
        path: normalize_path(path)?,
        user,
        raw: String::new(),
    })
}

fn validate_user(user: &str) -> Result<String, RepoUrlError> {
    if user.is_empty() {
        return Err(invalid("the ssh user name before '@' is empty"));
    }
    if user.starts_with('-') {
        return Err(invalid("the ssh user name must not start with '-'"));
    }
    if !only_name_chars(user) {
        return Err(invalid(
            "the ssh user name may only contain letters, digits, '.', '_' and '-'",
        ));
    }
    Ok(user.to_owned())
}

/// Returns "host" or "host:port" in lowercase, dropping the scheme's default port so
/// `https://github.com:443/o/r` matches a forge configured as "github.com".
fn normalize_host(host_port: &str, scheme: RepoScheme) -> Result<String, RepoUrlError> {
    if host_port.is_empty() {
        return Err(invalid("it has no host"));
    }
    if host_port.starts_with('-') {
        return Err(invalid("the host must not start with '-'"));
    }
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let (address, after) = bracketed
            .split_once(']')
            .ok_or_else(|| invalid("an IPv6 host is missing its closing ']'"))?;
        if address.is_empty()
            || !address
                .chars()
                .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.'))
        {
            return Err(invalid("the IPv6 host is malformed"));
        }
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| invalid("an IPv6 host must be followed by ':PORT' or '/'"))?,
            ),
        };
        (&host_port[..address.len() + 2], port)
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if !host.starts_with('[') {
        validate_hostname(host)?;
    }
    let host = host.to_ascii_lowercase();
    let port = match port {
        None => None,
        Some(port) => {
            let number =
                (!port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| port.parse::<u16>().ok())
                    .flatten()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| invalid("the port must be a number from 1 to 65535"))?;
            (Some(number) != scheme.default_port()).then_some(number)
        }
    };
    Ok(match port {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
}

fn validate_hostname(host: &str) -> Result<(), RepoUrlError> {
    if host.is_empty() {
        return Err(invalid("it has no host"));
    }
    if host.starts_with('-') || host.starts_with('.') {
        return Err(invalid("the host must not start with '-' or '.'"));
    }
    if host.contains("..") {
        return Err(invalid("the host must not contain '..'"));
    }
    if !only_name_chars(host) {
        return Err(invalid(
            "the host may only contain letters, digits, '.', '-' and '_'",
        ));
    }
    Ok(())
}

/// Whether `text` holds only ASCII letters, digits, '.', '_' and '-': what a host name and an
/// ssh user name may hold.
fn only_name_chars(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Strips one leading '/', one trailing '/' and a ".git" suffix, then checks every segment.
fn normalize_path(path: &str) -> Result<String, RepoUrlError> {
    let path = path.strip_prefix('/').unwrap_or(path);
    let path = path.strip_suffix('/').unwrap_or(path);
    let path = path.strip_suffix(".git").unwrap_or(path);
    if path.is_empty() {
        return Err(invalid(
            "it has no repository path; expected HOST/OWNER/NAME",
        ));
    }
    for segment in path.split('/') {
        if segment.is_empty() {
            return Err(invalid("the path contains an empty segment ('//')"));
        }
        if segment == "." || segment == ".." {
            return Err(invalid("the path must not contain '.' or '..' segments"));
        }
        if segment.starts_with('-') {
            return Err(invalid("a path segment must not start with '-'"));
        }
        if segment.contains('%') {
            return Err(invalid(
                "the path must not be percent-encoded; write the repository path plainly",
            ));
        }
        if !segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '~'))
        {
            return Err(invalid(
                "the path may only contain letters, digits, '.', '_', '-', '~' and '/'",
            ));
        }
    }
    Ok(path.to_owned())
}

#[cfg(test)]
mod tests;
