//! The outbound address policy (SSRF guard): which IP addresses the worker's outbound calls
//! (forge APIs, the LLM endpoint, git remotes) may connect to.
//!
//! A repository URL arrives in a request and api/base URLs may name hosts whose DNS someone
//! else controls, so a name that resolves to `169.254.169.254` (cloud metadata), `127.0.0.1`
//! (the worker's own listeners) or an internal network would turn the worker into a proxy
//! into places it was never meant to reach. Unless `[security] allow_private_networks` is set,
//! loopback, link-local, private, unspecified, shared (CGNAT), multicast and reserved addresses
//! are refused.
//!
//! Where the check happens:
//! - reqwest clients get a [`GuardedResolver`], so the addresses checked are the addresses
//!   connected to (a DNS answer that changes between a check and the connect, DNS rebinding,
//!   gains nothing). reqwest does not call a resolver for IP literals, so callers also run
//!   [`EgressPolicy::check_url`] before sending.
//! - libgit2 resolves names itself, so git remotes are checked with
//!   [`EgressPolicy::check_host`] just before a clone or push. That leaves a small window
//!   between our lookup and libgit2's own in which a rebinding DNS server could answer
//!   differently; closing it would need libgit2 to connect through a socket we opened.
//!
//! With a proxy configured (`HTTPS_PROXY`), reqwest resolves the proxy's name, not the
//! target's: the proxy's address is what is checked, and the proxy must do its own filtering.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Why an address is not reachable by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressClass {
    /// 127.0.0.0/8, ::1: this machine.
    Loopback,
    /// 169.254.0.0/16, fe80::/10: where cloud metadata services answer.
    LinkLocal,
    /// 10/8, 172.16/12, 192.168/16, fc00::/7 (and the deprecated site-local fec0::/10).
    Private,
    /// 0.0.0.0/8, ::: connecting to them reaches this machine on most systems.
    Unspecified,
    /// 100.64.0.0/10: carrier-grade NAT, often a provider's internal network.
    SharedCgnat,
    /// 224.0.0.0/4, ff00::/8.
    Multicast,
    /// 240.0.0.0/4 and 255.255.255.255.
    Reserved,
}

impl AddressClass {
    /// The class as a message names it.
    pub fn describe(self) -> &'static str {
        match self {
            AddressClass::Loopback => "loopback",
            AddressClass::LinkLocal => "link-local (cloud metadata range)",
            AddressClass::Private => "private network",
            AddressClass::Unspecified => "unspecified",
            AddressClass::SharedCgnat => "shared (CGNAT)",
            AddressClass::Multicast => "multicast",
            AddressClass::Reserved => "reserved",
        }
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// The class of a non-public address, or `None` for an address outbound calls may reach.
/// IPv4 addresses written as IPv6 (`::ffff:10.0.0.1`, NAT64 `64:ff9b::a00:1`) are judged by
/// the IPv4 address inside.
pub fn classify(ip: IpAddr) -> Option<AddressClass> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    let [a, b, ..] = ip.octets();
    if a == 0 {
        Some(AddressClass::Unspecified)
    } else if ip.is_loopback() {
        Some(AddressClass::Loopback)
    } else if ip.is_link_local() {
        Some(AddressClass::LinkLocal)
    } else if ip.is_private() {
        Some(AddressClass::Private)
    } else if a == 100 && (64..128).contains(&b) {
        Some(AddressClass::SharedCgnat)
    } else if ip.is_multicast() {
        Some(AddressClass::Multicast)
    } else if a >= 240 {
        Some(AddressClass::Reserved)
    } else {
        None
    }
}

fn classify_v6(ip: Ipv6Addr) -> Option<AddressClass> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let segments = ip.segments();
    // NAT64 well-known prefix 64:ff9b::/96 reaches the IPv4 address in its last 32 bits.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., hi, lo] = segments;
        return classify_v4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    }
    if ip.is_unspecified() {
        Some(AddressClass::Unspecified)
    } else if ip.is_loopback() {
        Some(AddressClass::Loopback)
    } else if segments[0] & 0xffc0 == 0xfe80 {
        Some(AddressClass::LinkLocal)
    } else if segments[0] & 0xfe00 == 0xfc00 || segments[0] & 0xffc0 == 0xfec0 {
        Some(AddressClass::Private)
    } else if ip.is_multicast() {
        Some(AddressClass::Multicast)
    } else {
        None
    }
}

/// A refused destination. The message names the host, the address and its class, and the
/// setting that would allow it; hosts and addresses are not secrets.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct BlockedAddress {
    pub host: String,
    pub ip: IpAddr,
    pub class: AddressClass,
}

impl fmt::Display for BlockedAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        if host.parse::<IpAddr>().ok() == Some(self.ip) {
            write!(f, "{} is a {} address", self.ip, self.class)?;
        } else {
            write!(
                f,
                "{} resolves to {}, a {} address",
                self.host, self.ip, self.class
            )?;
        }
        f.write_str(
            "; outbound connections to loopback, link-local, private, unspecified and CGNAT \
             addresses are refused unless [security] allow_private_networks = true",
        )
    }
}

/// Why a host could not be checked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    /// The host is (or resolves to) a refused address: permanent until the config changes.
    #[error("{0}")]
    Blocked(BlockedAddress),
    /// The name did not resolve: as transient as any DNS failure.
    #[error("cannot resolve host {host}: {message}")]
    Unresolvable { host: String, message: String },
}

/// The policy every outbound client of the worker applies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    allow_private_networks: bool,
}

impl EgressPolicy {
    pub fn new(allow_private_networks: bool) -> Self {
        Self {
            allow_private_networks,
        }
    }

    /// Every address allowed: for tests and local setups whose forge or LLM runs on loopback.
    pub fn allow_all() -> Self {
        Self::new(true)
    }

    pub fn allows_private_networks(&self) -> bool {
        self.allow_private_networks
    }

    /// Refuses `ip` (reached as `host`) when it is not public and the policy says so.
    pub fn check_ip(&self, host: &str, ip: IpAddr) -> Result<(), BlockedAddress> {
        if self.allow_private_networks {
            return Ok(());
        }
        match classify(ip) {
            Some(class) => Err(BlockedAddress {
                host: host.to_owned(),
                ip,
                class,
            }),
            None => Ok(()),
        }
    }

    /// Checks a URL whose host is an IP literal (names are checked by the resolver when the
    /// connection is made; reqwest skips resolvers for literals).
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), BlockedAddress> {
        let Some(host) = url.host_str() else {
            return Ok(());
        };
        match host.trim_start_matches('[').trim_end_matches(']').parse() {
            Ok(ip) => self.check_ip(host, ip),
            Err(_) => Ok(()),
        }
    }

    /// Resolves `host` (a name or an IP literal, IPv6 with or without brackets) and checks
    /// every address it resolves to: one refused address refuses the host, since the caller
    /// (libgit2) may connect to any of them.
    pub async fn check_host(&self, host: &str, port: u16) -> Result<(), EgressError> {
        if self.allow_private_networks {
            return Ok(());
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return self.check_ip(host, ip).map_err(EgressError::Blocked);
        }
        let addresses = resolve(bare, port)
            .await
            .map_err(|message| EgressError::Unresolvable {
                host: host.to_owned(),
                message,
            })?;
        for address in addresses {
            self.check_ip(host, address.ip())
                .map_err(EgressError::Blocked)?;
        }
        Ok(())
    }

    /// Installs the guard into a reqwest client: a resolver that refuses names resolving to
    /// a non-public address. Nothing is installed when private networks are allowed.
    pub fn apply(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        if self.allow_private_networks {
            builder
        } else {
            builder.dns_resolver(Arc::new(GuardedResolver { policy: *self }))
        }
    }
}

/// The [`BlockedAddress`] behind a failed reqwest call, if that is why it failed.
pub fn blocked_cause(error: &reqwest::Error) -> Option<BlockedAddress> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(blocked) = e.downcast_ref::<BlockedAddress>() {
            return Some(blocked.clone());
        }
        source = e.source();
    }
    None
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A DNS resolver for reqwest that fails the lookup when any address of a name is refused by
/// the policy, so the connection is never attempted.
#[derive(Clone, Debug)]
pub struct GuardedResolver {
    policy: EgressPolicy,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: reqwest puts the URL's port in.
            let addresses = resolve(&host, 0).await.map_err(|message| {
                Box::new(EgressError::Unresolvable {
                    host: host.clone(),
                    message,
                }) as BoxError
            })?;
            for address in &addresses {
                policy
                    .check_ip(&host, address.ip())
                    .map_err(|blocked| Box::new(blocked) as BoxError)?;
            }
            let addresses: reqwest::dns::Addrs = Box::new(addresses.into_iter());
            Ok(addresses)
        })
    }
}

/// The system resolver (getaddrinfo on a blocking thread, as reqwest's default does).
async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| e.to_string())?
        .collect();
    if addresses.is_empty() {
        return Err("no addresses".to_owned());
    }
    Ok(addresses)
}

/// Splits a URL authority ("host", "host:port", "[::1]:8080") into host and port.
pub fn split_authority(authority: &str, default_port: u16) -> (&str, u16) {
    if let Some(rest) = authority.strip_prefix('[')
        && let Some((address, after)) = rest.split_once(']')
    {
        let port = after
            .strip_prefix(':')
            .and_then(|p| p.parse().ok())
            .unwrap_or(default_port);
        return (address, port);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, port.parse().unwrap_or(default_port)),
        _ => (authority, default_port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(ip: &str) -> Option<AddressClass> {
        classify(ip.parse().unwrap())
    }

    #[test]
    fn every_non_public_range_is_classified() {
        use AddressClass::*;
        for (ip, expected) in [
            ("127.0.0.1", Some(Loopback)),
            ("127.255.0.9", Some(Loopback)),
            ("::1", Some(Loopback)),
            ("169.254.169.254", Some(LinkLocal)),
            ("fe80::1", Some(LinkLocal)),
            ("febf::1", Some(LinkLocal)),
            ("10.0.0.1", Some(Private)),
            ("172.16.0.1", Some(Private)),
            ("172.31.255.255", Some(Private)),
            ("192.168.1.1", Some(Private)),
            ("fc00::1", Some(Private)),
            ("fd12:3456::1", Some(Private)),
            ("0.0.0.0", Some(Unspecified)),
            ("0.1.2.3", Some(Unspecified)),
            ("::", Some(Unspecified)),
            ("100.64.0.1", Some(SharedCgnat)),
            ("100.127.255.255", Some(SharedCgnat)),
            ("224.0.0.1", Some(Multicast)),
            ("ff02::1", Some(Multicast)),
            ("255.255.255.255", Some(Reserved)),
            ("240.0.0.1", Some(Reserved)),
            // IPv4 in IPv6 clothing is judged by the IPv4 address.
            ("::ffff:127.0.0.1", Some(Loopback)),
            ("::ffff:169.254.169.254", Some(LinkLocal)),
            ("64:ff9b::a00:1", Some(Private)),
            // Public neighbours of the ranges.
            ("172.32.0.1", None),
            ("172.15.255.255", None),
            ("100.63.255.255", None),
            ("100.128.0.1", None),
            ("169.253.1.1", None),
            ("11.0.0.1", None),
            ("140.82.112.3", None),
            ("2606:50c0:8000::153", None),
            ("::ffff:140.82.112.3", None),
            ("fec0::1", Some(Private)),
            ("fe7f::1", None),
        ] {
            assert_eq!(class(ip), expected, "{ip}");
        }
    }

    #[test]
    fn the_setting_allows_everything() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(EgressPolicy::allow_all().check_ip("x", ip).is_ok());
        let err = EgressPolicy::default().check_ip("x", ip).unwrap_err();
        assert_eq!(err.class, AddressClass::Private);
    }

    #[test]
    fn messages_name_the_address_its_class_and_the_setting() {
        let policy = EgressPolicy::default();
        let literal = policy
            .check_url(&"http://169.254.169.254/latest".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            literal.starts_with("169.254.169.254 is a link-local (cloud metadata range) address"),
            "{literal}"
        );
        assert!(literal.contains("allow_private_networks"), "{literal}");
        let v6 = policy
            .check_url(&"https://[::1]:8443/api".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(v6.starts_with("::1 is a loopback address"), "{v6}");
        let named = BlockedAddress {
            host: "evil.example".into(),
            ip: "10.0.0.1".parse().unwrap(),
            class: AddressClass::Private,
        }
        .to_string();
        assert!(
            named.starts_with("evil.example resolves to 10.0.0.1, a private network address"),
            "{named}"
        );
        assert!(
            policy
                .check_url(&"https://api.github.com/".parse().unwrap())
                .is_ok()
        );
    }

    #[tokio::test]
    async fn hosts_are_resolved_and_every_address_checked() {
        let policy = EgressPolicy::default();
        // Literals need no DNS and are never connected to.
        for (host, class) in [
            ("10.0.0.1", AddressClass::Private),
            ("169.254.169.254", AddressClass::LinkLocal),
            ("[fe80::1]", AddressClass::LinkLocal),
        ] {
            match policy.check_host(host, 443).await {
                Err(EgressError::Blocked(b)) => assert_eq!(b.class, class, "{host}"),
                other => panic!("{host}: {other:?}"),
            }
        }
        // "localhost" resolves through the system resolver to loopback.
        match policy.check_host("localhost", 443).await {
            Err(EgressError::Blocked(b)) => {
                assert_eq!(b.class, AddressClass::Loopback);
                assert!(b.to_string().starts_with("localhost resolves to "), "{b}");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            EgressPolicy::allow_all()
                .check_host("localhost", 443)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn the_resolver_refuses_before_connecting() {
        // A listener on loopback that must never see a connection.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = EgressPolicy::default()
            .apply(reqwest::Client::builder())
            .build()
            .unwrap();
        let error = client
            .get(format!("http://localhost:{port}/"))
            .send()
            .await
            .unwrap_err();
        let blocked = blocked_cause(&error)
            .unwrap_or_else(|| panic!("not refused by the resolver: {error:?}"));
        assert_eq!(blocked.class, AddressClass::Loopback);
        assert!(
            listener.accept().is_err(),
            "a connection reached the listener"
        );
    }

    #[test]
    fn authorities_split_into_host_and_port() {
        assert_eq!(split_authority("github.com", 443), ("github.com", 443));
        assert_eq!(split_authority("h:8443", 443), ("h", 8443));
        assert_eq!(split_authority("[::1]:2222", 22), ("::1", 2222));
        assert_eq!(split_authority("[::1]", 22), ("::1", 22));
    }
}
