//! Just enough of the package-URL spec (`pkg:type/namespace/name@version?qualifiers#subpath`)
//! to learn a scanned package's ecosystem and full name from the purl a scanner reports.

/// The parts of a purl this importer reads, percent-decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purl {
    /// Lower-cased, as the spec says types are case-insensitive.
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub version: Option<String>,
}

impl Purl {
    /// `None` for anything that is not a purl with at least a type and a name.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.trim().strip_prefix("pkg:")?;
        let rest = rest.trim_start_matches('/');
        let rest = rest.split('#').next().unwrap_or(rest);
        let rest = rest.split('?').next().unwrap_or(rest);
        let (kind, path) = rest.split_once('/')?;
        // The version separator is an `@` after the last `/`: an unencoded npm scope
        // (`@babel/core`) is part of the namespace.
        let last_slash = path.rfind('/').map_or(0, |i| i + 1);
        let (path, version) = match path[last_slash..].rfind('@') {
            Some(at) => (&path[..last_slash + at], Some(&path[last_slash + at + 1..])),
            None => (path, None),
        };
        let mut segments: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode)
            .collect();
        let name = segments.pop()?;
        if kind.is_empty() || name.is_empty() {
            return None;
        }
        let namespace = (!segments.is_empty()).then(|| segments.join("/"));
        Some(Self {
            kind: kind.to_ascii_lowercase(),
            namespace,
            name,
            version: version.map(percent_decode).filter(|v| !v.is_empty()),
        })
    }

    /// The package name as the ecosystem's own tooling spells it: `group:artifact` for Maven,
    /// `namespace/name` where the namespace is part of the name (npm scopes, Go modules,
    /// Composer vendors), the bare name elsewhere (a deb/rpm/apk namespace is the distro).
    pub fn package_name(&self) -> String {
        match (&self.namespace, self.kind.as_str()) {
            (Some(ns), "maven") => format!("{ns}:{}", self.name),
            (Some(ns), "npm" | "golang" | "composer" | "github" | "swift" | "conan") => {
                format!("{ns}/{}", self.name)
            }
            _ => self.name.clone(),
        }
    }
}

/// Decodes `%XX` escapes; a malformed escape is kept as written rather than rejected.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_parts_scanners_emit() {
        let p = Purl::parse("pkg:npm/%40babel/traverse@7.22.5").unwrap();
        assert_eq!(p.kind, "npm");
        assert_eq!(p.namespace.as_deref(), Some("@babel"));
        assert_eq!(p.package_name(), "@babel/traverse");
        assert_eq!(p.version.as_deref(), Some("7.22.5"));

        let p =
            Purl::parse("pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1?type=jar").unwrap();
        assert_eq!(p.package_name(), "org.apache.logging.log4j:log4j-core");
        assert_eq!(p.version.as_deref(), Some("2.14.1"));

        let p = Purl::parse("pkg:golang/golang.org/x/net@v0.7.0").unwrap();
        assert_eq!(p.package_name(), "golang.org/x/net");

        let p = Purl::parse("pkg:deb/debian/openssl@3.0.11-1~deb12u1?arch=amd64&distro=debian-12")
            .unwrap();
        assert_eq!(p.namespace.as_deref(), Some("debian"));
        assert_eq!(p.package_name(), "openssl");
        assert_eq!(p.version.as_deref(), Some("3.0.11-1~deb12u1"));

        let p = Purl::parse("pkg:PyPI/Django").unwrap();
        assert_eq!(p.kind, "pypi");
        assert_eq!(p.version, None);

        let p = Purl::parse("pkg:npm/@babel/core@7.0.0").unwrap();
        assert_eq!(p.package_name(), "@babel/core");
        assert_eq!(p.version.as_deref(), Some("7.0.0"));
    }

    #[test]
    fn rejects_what_is_not_a_purl() {
        assert_eq!(Purl::parse("lodash@4.17.20"), None);
        assert_eq!(Purl::parse("pkg:npm"), None);
        assert_eq!(Purl::parse("pkg:npm/"), None);
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("a%2Fb%zz"), "a/b%zz");
    }
}
