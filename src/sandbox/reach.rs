//! Where code in the sandbox may connect through the egress proxy: its own rules, closed by
//! default, and independent of the worker's (`security.allow_private_networks` is for the
//! worker's forge and git traffic, never for code from a repository).
//!
//! - A **named endpoint** (a registry the worker is configured for, or a `sandbox.allowed_hosts`
//!   entry), as host **and port**, is reachable whatever its address: a company registry on a
//!   private network is the operator's choice.
//! - Anything else is reachable only on a public address (never loopback, private, link-local
//!   such as cloud metadata, CGNAT, multicast or reserved) and only on ports 443 and 80, and
//!   not at all once `sandbox.allowed_hosts` is set: then the named endpoints are the whole list.
//!
//! The proxy resolves the name itself and checks every address it resolved to before it
//! connects to one of them, so a DNS answer that changes between a check and the connection
//! (rebinding) gains nothing.

use std::net::IpAddr;

use crate::egress::classify;

/// A host and port a tool may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Lower case, without the brackets of an IPv6 literal.
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    pub fn new(host: &str, port: u16) -> Self {
        Endpoint {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase(),
            port,
        }
    }

    /// The endpoint of a URL (`sparse+https://host/index/`, `https://host:8443/simple`);
    /// none for a URL without a host (`file://`).
    pub fn of_url(url: &str) -> Option<Self> {
        let url = url.trim();
        let url = url
            .split_once('+')
            .filter(|(scheme, _)| !scheme.contains(':') && !scheme.contains('/'))
            .map_or(url, |(_, rest)| rest);
        let parsed = reqwest::Url::parse(url).ok()?;
        let host = parsed.host_str()?;
        Some(Endpoint::new(host, parsed.port_or_known_default()?))
    }

    /// A `sandbox.allowed_hosts` entry: `host:port`, `[v6]:port`, or a bare host (ports 443
    /// and 80).
    pub fn of_entry(entry: &str) -> Vec<Self> {
        let entry = entry.trim();
        if entry.contains("://") {
            return Endpoint::of_url(entry).into_iter().collect();
        }
        let with_port = match entry.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') || host.ends_with(']') => {
                port.parse().ok().map(|port| Endpoint::new(host, port))
            }
            _ => None,
        };
        match with_port {
            Some(endpoint) => vec![endpoint],
            None => vec![Endpoint::new(entry, 443), Endpoint::new(entry, 80)],
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Ports a host that is no named endpoint may be reached on.
const OPEN_PORTS: [u16; 2] = [443, 80];

/// The sandbox's egress rules.
#[derive(Debug, Clone, Default)]
pub struct Reach {
    named: Vec<Endpoint>,
    /// `sandbox.allowed_hosts` is set: nothing but the named endpoints.
    closed: bool,
}

impl Reach {
    /// The configured registries and the `sandbox.allowed_hosts` entries.
    pub fn new(allowed_hosts: &[String], registries: Vec<Endpoint>) -> Self {
        let mut named = registries;
        named.extend(allowed_hosts.iter().flat_map(|e| Endpoint::of_entry(e)));
        named.dedup();
        Reach {
            named,
            closed: !allowed_hosts.is_empty(),
        }
    }

    /// Whether `host:port` is a named endpoint; an error (the rule) when the name alone
    /// refuses it.
    pub fn check_name(&self, host: &str, port: u16) -> Result<bool, String> {
        let asked = Endpoint::new(host, port);
        if self.named.contains(&asked) {
            return Ok(true);
        }
        if self.closed {
            return Err(
                "neither a configured registry nor in sandbox.allowed_hosts (host and port)"
                    .to_owned(),
            );
        }
        if !OPEN_PORTS.contains(&port) {
            return Err(format!(
                "port {port}: a host that is not a configured registry is reachable on ports \
                 443 and 80 only"
            ));
        }
        Ok(false)
    }

    /// Whether an address `host` resolved to may be connected to.
    pub fn check_address(&self, named: bool, ip: IpAddr) -> Result<(), String> {
        match classify(ip) {
            Some(class) if !named => Err(format!(
                "{ip} is a {class} address: the sandbox reaches one only as a configured \
                 registry or a sandbox.allowed_hosts entry with its port"
            )),
            _ => Ok(()),
        }
    }

    /// The named endpoints, for `remediator doctor` and the start-up log.
    pub fn named(&self) -> &[Endpoint] {
        &self.named
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_read_from_urls_and_entries() {
        assert_eq!(
            Endpoint::of_url("sparse+http://127.0.0.1:8080/index/"),
            Some(Endpoint::new("127.0.0.1", 8080))
        );
        assert_eq!(
            Endpoint::of_url("https://Registry.Example/npm/"),
            Some(Endpoint::new("registry.example", 443))
        );
        assert_eq!(Endpoint::of_url("file:///srv/mirror"), None);
        assert_eq!(
            Endpoint::of_entry("10.0.0.5:8081"),
            [Endpoint::new("10.0.0.5", 8081)]
        );
        assert_eq!(
            Endpoint::of_entry("[::1]:4873"),
            [Endpoint::new("::1", 4873)]
        );
        assert_eq!(
            Endpoint::of_entry("mirror.example"),
            [
                Endpoint::new("mirror.example", 443),
                Endpoint::new("mirror.example", 80)
            ]
        );
    }

    #[test]
    fn private_and_metadata_addresses_need_a_named_endpoint_with_its_port() {
        let reach = Reach::new(&[], vec![Endpoint::new("127.0.0.1", 4873)]);
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let metadata: IpAddr = "169.254.169.254".parse().unwrap();
        let public: IpAddr = "93.184.216.34".parse().unwrap();
        // The configured registry, on its port.
        assert_eq!(reach.check_name("127.0.0.1", 4873), Ok(true));
        assert!(reach.check_address(true, loopback).is_ok());
        // The same host on another port (RabbitMQ, Postgres): not named, and not a web port.
        assert!(reach.check_name("127.0.0.1", 5672).is_err());
        // A name that is not named, on a web port, resolving to loopback or metadata: refused.
        assert_eq!(reach.check_name("evil.example", 80), Ok(false));
        assert!(reach.check_address(false, loopback).is_err());
        let refused = reach.check_address(false, metadata).unwrap_err();
        assert!(refused.contains("link-local"), "{refused}");
        assert!(reach.check_address(false, public).is_ok());
    }

    #[test]
    fn allowed_hosts_close_the_list() {
        let reach = Reach::new(
            &["mirror.example".to_owned()],
            vec![Endpoint::new("registry.example", 443)],
        );
        assert_eq!(reach.check_name("registry.example", 443), Ok(true));
        assert_eq!(reach.check_name("mirror.example", 443), Ok(true));
        assert!(reach.check_name("elsewhere.example", 443).is_err());
        assert!(reach.check_name("registry.example", 8443).is_err());
    }
}
