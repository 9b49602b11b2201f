//! A throw-away certificate authority and a `localhost`/127.0.0.1 server certificate.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The CA (PEM, for clients) and a server configuration with a certificate it signed.
pub struct TestCa {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// rustls server configuration presenting the leaf certificate.
    pub server: Arc<rustls::ServerConfig>,
    /// The leaf certificate and its CA, PEM (for servers configured from files).
    pub chain_pem: String,
    /// The leaf's private key, PEM.
    pub key_pem: String,
}

impl TestCa {
    /// A new CA and leaf for `localhost` and `127.0.0.1`.
    pub fn new() -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "postcall test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);

        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf_params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        leaf_params
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![
                    CertificateDer::from(leaf.der().to_vec()),
                    CertificateDer::from(ca_cert.der().to_vec()),
                ],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            )
            .unwrap();
        Self {
            chain_pem: format!("{}{}", leaf.pem(), ca_cert.pem()),
            key_pem: leaf_key.serialize_pem(),
            ca_pem: ca_cert.pem(),
            server: Arc::new(server),
        }
    }

    /// A client configuration trusting only this CA.
    pub fn client(&self) -> Arc<rustls::ClientConfig> {
        postcall::net::tls::client_config_from_pem(self.ca_pem.as_bytes()).unwrap()
    }
}
