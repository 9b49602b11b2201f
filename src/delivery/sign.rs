//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256(id.timestamp.body)>`
//! keyed by the base64-decoded part of a `whsec_…` secret.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::net::Secret;

/// Why a signing secret is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// Not `whsec_` followed by base64.
    #[error("a signing secret is whsec_ followed by base64 (24 to 64 bytes)")]
    Format,
}

/// A decoded signing key (never printed).
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}

impl SigningKey {
    /// Parses `whsec_<base64>`.
    ///
    /// # Errors
    /// Wrong prefix, bad base64, or a key outside 24–64 bytes.
    pub fn parse(secret: &Secret) -> Result<Self, SecretError> {
        let b64 = secret
            .expose()
            .strip_prefix("whsec_")
            .ok_or(SecretError::Format)?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| SecretError::Format)?;
        if !(24..=64).contains(&key.len()) {
            return Err(SecretError::Format);
        }
        Ok(Self(key))
    }

    /// The `webhook-signature` value for a message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key size");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        format!("v1,{sig}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_test_vector() {
        let key =
            SigningKey::parse(&Secret::new("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")).unwrap();
        assert_eq!(
            key.sign(
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1_649_367_553,
                br#"{"email":"test@example.com","username":"test_user"}"#
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
        assert!(!format!("{key:?}").contains("C2FV"));
    }

    #[test]
    fn bad_secrets_are_refused() {
        for s in [
            "C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "whsec_!!!",
            "whsec_AAAA",
        ] {
            assert_eq!(
                SigningKey::parse(&Secret::new(s)),
                Err(SecretError::Format),
                "{s}"
            );
        }
    }
}
