//! The worker's own certificate authority for registries that need credentials.
//!
//! Tools in the sandbox never hold a registry token. When one connects to a registry that has
//! credentials (`CONNECT npm.internal.example:443`), the egress proxy answers the TLS handshake
//! itself with a certificate for that host signed by this CA, reads the requests, and forwards
//! them to the registry over verified TLS with the token added ([`super::registry_auth`]). The
//! CA is made when the worker starts, its key lives only in the worker's memory, and only the
//! sandbox's trust bundle holds its certificate: nothing outside a tool run trusts it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub struct RegistryCa {
    certificate: rcgen::Certificate,
    key: KeyPair,
    /// A server configuration per host, made on first use.
    servers: Mutex<HashMap<String, Arc<ServerConfig>>>,
}

impl std::fmt::Debug for RegistryCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCa").finish_non_exhaustive()
    }
}

impl RegistryCa {
    /// A new CA (ECDSA P-256), valid from yesterday for ten years.
    pub fn generate() -> Result<Self, String> {
        let failed = |e: rcgen::Error| format!("making the sandbox's registry CA: {e}");
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params
            .distinguished_name
            .push(DnType::CommonName, "Remediator sandbox registry CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        valid_from_yesterday(&mut params, 3650);
        let key = KeyPair::generate().map_err(failed)?;
        let certificate = params.self_signed(&key).map_err(failed)?;
        Ok(RegistryCa {
            certificate,
            key,
            servers: Mutex::default(),
        })
    }

    /// The CA certificate, for the sandbox's trust bundle.
    pub fn certificate_pem(&self) -> String {
        self.certificate.pem()
    }

    /// The TLS server side for `host` (a name or an IP literal): a certificate for it signed by
    /// this CA, HTTP/1.1 only.
    pub fn server_config(&self, host: &str) -> Result<Arc<ServerConfig>, String> {
        let mut servers = self.servers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(config) = servers.get(host) {
            return Ok(config.clone());
        }
        let failed = |e: rcgen::Error| format!("making a certificate for {host}: {e}");
        let mut params = CertificateParams::new(vec![host.to_owned()]).map_err(failed)?;
        params.distinguished_name.push(DnType::CommonName, host);
        valid_from_yesterday(&mut params, 30);
        let key = KeyPair::generate().map_err(failed)?;
        let leaf = params
            .signed_by(&key, &self.certificate, &self.key)
            .map_err(failed)?;
        let chain = vec![leaf.der().clone(), self.certificate.der().clone()];
        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| format!("the certificate for {host}: {e}"))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);
        servers.insert(host.to_owned(), config.clone());
        Ok(config)
    }

    /// The CA certificate as DER (tests trust it directly).
    pub fn certificate_der(&self) -> CertificateDer<'static> {
        self.certificate.der().clone()
    }
}

fn valid_from_yesterday(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(days);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_gets_one_certificate_signed_by_the_ca() {
        let ca = RegistryCa::generate().unwrap();
        assert!(
            ca.certificate_pem()
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        let first = ca.server_config("npm.internal.example").unwrap();
        let again = ca.server_config("npm.internal.example").unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert!(ca.server_config("127.0.0.1").is_ok());
        assert_eq!(first.alpn_protocols, [b"http/1.1".to_vec()]);
    }
}
