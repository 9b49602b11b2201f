//! Where the engine finds signing keys: outbox jobs name their trigger, never hold its secret,
//! and are signed with the trigger's key current at send time (Standard Webhooks semantics
//! on rotation: after a secret changes, every later attempt carries the new signature).

use std::collections::HashMap;

use super::sign::SigningKey;

/// What a key source knows about a trigger's signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLookup {
    /// Sign with this key.
    Key(SigningKey),
    /// The trigger exists and signs nothing now: send unsigned.
    Unsigned,
    /// No such trigger: the job cannot be signed and becomes a dead letter.
    Removed,
    /// Triggers are not all loaded yet (a remote source not fetched): try again later.
    NotReady,
}

/// Looks up a trigger's current signing key.
pub trait KeySource: Send + Sync {
    /// The key of trigger `trigger_id`.
    fn key(&self, trigger_id: &str) -> KeyLookup;
}

/// A fixed map of trigger id → key (tests, and embedders without a trigger set).
#[derive(Debug, Clone, Default)]
pub struct StaticKeys(pub HashMap<String, SigningKey>);

impl KeySource for StaticKeys {
    fn key(&self, trigger_id: &str) -> KeyLookup {
        self.0
            .get(trigger_id)
            .map_or(KeyLookup::Removed, |k| KeyLookup::Key(k.clone()))
    }
}
