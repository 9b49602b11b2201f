//! Names from the PBX's own directory: devices, users, queues, ring groups and numbers.
//!
//! Pure data, looked up by id while a CDR is built. It is empty unless filled (from Crossbar,
//! or a file); the CDR then falls back to the caller-id fields the events carry, and group
//! names are left out rather than guessed.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// A device (Kazoo `devices` document).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Device name, e.g. `(T42S) Front Desk`.
    pub name: Option<String>,
    /// SIP username.
    pub username: Option<String>,
}

/// A user (Kazoo `users` document).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// Full name.
    pub name: Option<String>,
    /// Internal extension.
    pub extension: Option<String>,
}

/// Directory of one PBX, keyed by Kazoo document id (and E.164 number for DIDs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PbxDirectory {
    /// Devices by id.
    #[serde(default)]
    pub devices: HashMap<String, DeviceInfo>,
    /// Users by id.
    #[serde(default)]
    pub users: HashMap<String, UserInfo>,
    /// ACDc queue names by id.
    #[serde(default)]
    pub queues: HashMap<String, String>,
    /// Ring group names by id.
    #[serde(default)]
    pub ring_groups: HashMap<String, String>,
    /// DID names by E.164 number.
    #[serde(default)]
    pub numbers: HashMap<String, String>,
}
