//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256(id.timestamp.body)>`
//! keyed by the base64-decoded part of a `whsec_…` secret.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::net::Secret;

/// Why a signing secret is unusable. Messages never contain the secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// No `whsec_` prefix.
    #[error("must start with `whsec_` followed by base64")]
    Prefix,
    /// The part after the prefix is not base64.
    #[error("the part after `whsec_` is not valid base64")]
    Base64,
    /// The decoded key is too short or too long.
    #[error("the key is {0} bytes; it must be 24 to 64 bytes")]
    Length(usize),
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
            .ok_or(SecretError::Prefix)?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| SecretError::Base64)?;
        if !(24..=64).contains(&key.len()) {
            return Err(SecretError::Length(key.len()));
        }
        Ok(Self(key))
    }

    /// The decoded key.
    pub fn bytes(&self) -> &[u8] {
        &self.0
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
        let parse = |s: &str| SigningKey::parse(&Secret::new(s));
        assert_eq!(
            parse("C2FVsBQIhrscChlQIMV+b5sSYspob7oD"),
            Err(SecretError::Prefix)
        );
        assert_eq!(parse("whsec_!!!"), Err(SecretError::Base64));
        assert_eq!(parse("whsec_AAAA"), Err(SecretError::Length(3)));
        assert!(!parse("whsec_AAAA")
            .unwrap_err()
            .to_string()
            .contains("AAAA"));
    }
}
