//! What postcall reads from Crossbar besides tokens: the names the CDR shows (devices, users,
//! queues, ring groups, numbers, account time zones), the active channels after a
//! reconnect, and descendant accounts to subscribe.
//!
//! Field choices (Kazoo 4.3 listings): device `name`/`username`; user `first_name` +
//! `last_name`, extension from `presence_id` (what SmartPBX sets to the extension) else
//! `extension`; queue and group `name`; number names from `name`, `friendly_name` or
//! `cnam.display_name` in `phone_numbers`; account `name`/`timezone`.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

use super::crossbar::{Crossbar, CrossbarError};
use super::names::{DeviceInfo, PbxDirectory, UserInfo};
use crate::net::Secret;

/// An account document's useful fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountInfo {
    /// Account name.
    pub name: Option<String>,
    /// IANA time zone.
    pub timezone: Option<String>,
}

/// A directory read of a set of accounts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectorySnapshot {
    /// Names keyed by document id (ids are unique across accounts).
    pub directory: PbxDirectory,
    /// Account documents by id.
    pub accounts: BTreeMap<String, AccountInfo>,
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn number_text(v: &Value, key: &str) -> Option<String> {
    match v.get(key) {
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => text(v, key),
    }
}

/// Reads the directory of every account in `accounts`.
///
/// # Errors
/// The first Crossbar error; the caller keeps its previous snapshot.
pub async fn fetch_directory(
    crossbar: &Crossbar,
    token: &Secret,
    accounts: &[String],
) -> Result<DirectorySnapshot, CrossbarError> {
    let mut snap = DirectorySnapshot::default();
    for account in accounts {
        let base = format!("/v2/accounts/{account}");
        let doc = crossbar.get(token, &base).await?;
        snap.accounts.insert(
            account.clone(),
            AccountInfo {
                name: text(&doc, "name"),
                timezone: text(&doc, "timezone"),
            },
        );
        let dir = &mut snap.directory;
        for d in crossbar.list(token, &format!("{base}/devices")).await? {
            if let Some(id) = text(&d, "id") {
                let info = DeviceInfo {
                    name: text(&d, "name"),
                    username: text(&d, "username"),
                };
                dir.devices.insert(id, info);
            }
        }
        for u in crossbar.list(token, &format!("{base}/users")).await? {
            if let Some(id) = text(&u, "id") {
                let name = [text(&u, "first_name"), text(&u, "last_name")]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ");
                let extension =
                    number_text(&u, "presence_id").or_else(|| number_text(&u, "extension"));
                let info = UserInfo {
                    name: (!name.is_empty()).then_some(name),
                    extension,
                };
                dir.users.insert(id, info);
            }
        }
        for q in crossbar.list(token, &format!("{base}/queues")).await? {
            if let (Some(id), Some(name)) = (text(&q, "id"), text(&q, "name")) {
                dir.queues.insert(id, name);
            }
        }
        for g in crossbar.list(token, &format!("{base}/groups")).await? {
            if let (Some(id), Some(name)) = (text(&g, "id"), text(&g, "name")) {
                dir.ring_groups.insert(id, name);
            }
        }
        let numbers = crossbar
            .get(token, &format!("{base}/phone_numbers"))
            .await?;
        if let Some(map) = numbers.get("numbers").and_then(Value::as_object) {
            for (number, doc) in map {
                let name = text(doc, "name")
                    .or_else(|| text(doc, "friendly_name"))
                    .or_else(|| doc.get("cnam").and_then(|c| text(c, "display_name")));
                if let Some(name) = name {
                    dir.numbers.insert(number.clone(), name);
                }
            }
        }
    }
    Ok(snap)
}

/// Call ids of the channels up right now in `account` (`GET …/channels`).
///
/// # Errors
/// A Crossbar error.
pub async fn active_channels(
    crossbar: &Crossbar,
    token: &Secret,
    account: &str,
) -> Result<HashSet<String>, CrossbarError> {
    let items = crossbar
        .list(token, &format!("/v2/accounts/{account}/channels"))
        .await?;
    Ok(items
        .iter()
        .filter_map(|c| text(c, "uuid").or_else(|| text(c, "call_id")))
        .collect())
}

/// Ids of every account below `account` (`GET …/descendants`).
///
/// # Errors
/// A Crossbar error.
pub async fn descendants(
    crossbar: &Crossbar,
    token: &Secret,
    account: &str,
) -> Result<Vec<String>, CrossbarError> {
    let items = crossbar
        .list(token, &format!("/v2/accounts/{account}/descendants"))
        .await?;
    Ok(items.iter().filter_map(|a| text(a, "id")).collect())
}
