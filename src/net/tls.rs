//! The one rustls client configuration: webpki roots, plus an optional extra CA (a private PBX
//! or receiver certificate authority). Certificate verification cannot be turned off.

use std::path::Path;
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The extra CA file could not be read. The I/O error is part of the message, not a
    /// `source()`: a report walking the chain would print it twice.
    #[error("{file}: cannot read CA file: {error}")]
    Read {
        /// The file.
        file: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The extra CA file holds no usable certificate.
    #[error("{file}: no valid PEM certificate: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// What was wrong.
        message: String,
    },
}

/// A client configuration trusting the webpki roots and, if given, every certificate in the
/// PEM file `extra_ca`.
///
/// # Errors
/// The extra CA file cannot be read or holds no certificate rustls accepts.
pub fn client_config(extra_ca: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra_ca {
        let file = path.display().to_string();
        let pem = std::fs::read(path).map_err(|error| TlsError::Read {
            file: file.clone(),
            error,
        })?;
        add_pem(&mut roots, &pem).map_err(|message| TlsError::Invalid { file, message })?;
    }
    Ok(Arc::new(config_with_roots(roots)))
}

/// A client configuration trusting exactly the certificates of `pem` (tests, pinned CAs).
///
/// # Errors
/// `pem` holds no certificate rustls accepts.
pub fn client_config_from_pem(pem: &[u8]) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    add_pem(&mut roots, pem).map_err(|message| TlsError::Invalid {
        file: "<inline>".into(),
        message,
    })?;
    Ok(Arc::new(config_with_roots(roots)))
}

fn add_pem(roots: &mut RootCertStore, pem: &[u8]) -> Result<(), String> {
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| e.to_string())?;
        roots.add(cert).map_err(|e| e.to_string())?;
        added += 1;
    }
    if added == 0 {
        return Err("no CERTIFICATE block".into());
    }
    Ok(())
}

fn config_with_roots(roots: RootCertStore) -> ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_ca_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ca.pem");
        std::fs::write(&f, "not a certificate").unwrap();
        let e = client_config(Some(&f)).unwrap_err().to_string();
        assert!(e.contains("ca.pem") && e.contains("no valid PEM"), "{e}");
        let missing = client_config(Some(&dir.path().join("nope.pem"))).unwrap_err();
        assert!(matches!(missing, TlsError::Read { .. }));
        // The OS error is said once, whether the error is displayed or its chain walked.
        assert!(std::error::Error::source(&missing).is_none());
        assert_eq!(
            missing.to_string().matches("os error 2").count(),
            1,
            "{missing}"
        );
        assert!(client_config(None).is_ok());
    }
}
