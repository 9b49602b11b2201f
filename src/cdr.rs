//! The session CDR: the `cdr` object of every webhook payload.
//!
//! Field names, order and types follow the product page's tables and example JSON
//! (`dType` = `CloudSessionCdr`, `sVer` = 1, `lRngDevName` spelled correctly). Optional text
//! that is unknown is omitted rather than sent as `""` or `null`; the 1/0 flags, `dir`, `type`
//! and the timings are always present, and so are `recordingIds`, `directoryMatches` and
//! `tags` (possibly empty), which keeps receiver-side schemas (Azure Logic Apps) simple.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `dType` of every record.
pub const CDR_TYPE: &str = "CloudSessionCdr";
/// `sVer` of every record.
pub const CDR_VERSION: u32 = 1;

/// One call session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cdr {
    /// Session id: a UUID derived from the session, stable across replays and redeliveries.
    pub id: String,
    /// Always [`CDR_TYPE`].
    #[serde(rename = "dType")]
    pub d_type: String,
    /// Always [`CDR_VERSION`].
    #[serde(rename = "sVer")]
    pub s_ver: u32,
    /// Id of the communications platform (configuration).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pbx_id: Option<String>,
    /// Configured name of the platform.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pbx_name: Option<String>,
    /// IANA time zone of `start`, `answer` and `end`.
    pub tz: String,
    /// First leg created (RFC 3339, whole seconds, offset of `tz`).
    pub start: String,
    /// First moment a person was connected; absent when never answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// Last leg destroyed (or the last event seen when force-closed).
    pub end: String,
    /// `end − start`, seconds.
    pub dur: u64,
    /// Seconds before answer (or end) during which a destination was alerting.
    pub ring: u64,
    /// Person-connected seconds, excluding hold and park.
    pub talk: u64,
    /// Held seconds while connected.
    pub hold: u64,
    /// Parked seconds.
    pub park: u64,
    /// Unanswered external incoming call that rang longer than the short-ring threshold.
    pub lost: u8,
    /// The parked party hung up before retrieval.
    #[serde(rename = "lostinPark")]
    pub lostin_park: u8,
    /// Unanswered external incoming call that rang at most the short-ring threshold.
    pub aban: u8,
    /// A person answered.
    pub ans: u8,
    /// Answered, and talk + hold below the short-call threshold.
    pub short: u8,
    /// Clear-down cause.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// 0 unknown, 1 internal, 2 incoming, 3 outgoing, 4 both.
    pub dir: u8,
    /// 0 unknown, 1 internal, 2 external.
    #[serde(rename = "type")]
    pub call_type: u8,
    /// Two trunk legs were connected.
    pub t2t: u8,
    /// The external party (E.164 where it is a valid number).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cli_num: Option<String>,
    /// Caller name as received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cli_name: Option<String>,
    /// Place name of `cliNum`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cli_loc: Option<String>,
    /// Area code of `cliNum`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cli_area: Option<String>,
    /// US state of `cliNum`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cli_state: Option<String>,
    /// ISO country of `cliNum`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cli_ctry: Option<String>,
    /// Our number (DID dialled, or caller id presented), E.164.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ddi_num: Option<String>,
    /// Name of that number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ddi_name: Option<String>,
    /// First rang device, user and agent.
    #[serde(flatten)]
    pub first_rang: PartyFields<FirstRang>,
    /// Last rang device, user and agent.
    #[serde(flatten)]
    pub last_rang: PartyFields<LastRang>,
    /// Answering device, user and agent.
    #[serde(flatten)]
    pub answering: PartyFields<Answering>,
    /// Last answering device, user and agent.
    #[serde(flatten)]
    pub last_answering: PartyFields<LastAnswering>,
    /// Prefix the routing added to the caller-id number.
    #[serde(rename = "rteID", skip_serializing_if = "Option::is_none")]
    pub rte_id: Option<String>,
    /// Prefix the routing added to the caller-id name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rte_name: Option<String>,
    /// Group (queue or ring group) of the first rang device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub f_rng_group_name: Option<String>,
    /// Group of the last rang device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l_rng_group_name: Option<String>,
    /// Group of the answering device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ans_group_name: Option<String>,
    /// A recording exists.
    pub has_rec: u8,
    /// A rate was applied.
    pub rate: u8,
    /// Cost of the call under the applied rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_cost: Option<f64>,
    /// Band of the applied rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_band: Option<String>,
    /// Name of the applied rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_name: Option<String>,
    /// Recording ids, in order of appearance.
    pub recording_ids: Vec<String>,
    /// Contacts whose number matches `cliNum`, strongest match first.
    pub directory_matches: Vec<DirectoryMatch>,
    /// Callflow application variables and system tags.
    pub tags: BTreeMap<String, String>,
}

/// A contact matched to the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryMatch {
    /// Directory name.
    pub dir_name: String,
    /// Directory id.
    pub dir_id: String,
    /// Always `DirectoryContactMatch`.
    pub dir_type: String,
    /// Contact id.
    pub contact_id: String,
    /// Contact fields (`fullName`, `companyName`, `phone1`, ... `field10`), present ones only.
    pub fields: BTreeMap<String, String>,
}

/// Who a role (first rang, answering, ...) resolved to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Party {
    /// Device number (SIP username).
    pub dev_num: Option<String>,
    /// Device name.
    pub dev_name: Option<String>,
    /// User number (extension).
    pub usr_num: Option<String>,
    /// User name.
    pub usr_name: Option<String>,
    /// Agent number.
    pub agt_num: Option<String>,
    /// Agent name.
    pub agt_name: Option<String>,
}

/// The six fields of one role, serialised under the role's prefix (`fRng`, `lRng`, `ans`, `lAns`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartyFields<R> {
    /// The resolved party.
    pub party: Party,
    role: std::marker::PhantomData<R>,
}

impl<R> From<Party> for PartyFields<R> {
    fn from(party: Party) -> Self {
        Self {
            party,
            role: std::marker::PhantomData,
        }
    }
}

/// A role's field-name prefix.
pub trait Role {
    /// Field names in order: device number/name, user number/name, agent number/name.
    const NAMES: [&'static str; 6];
}

macro_rules! role {
    ($ty:ident, $doc:literal, $($name:literal),+) => {
        #[doc = $doc]
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $ty;
        impl Role for $ty {
            const NAMES: [&'static str; 6] = [$($name),+];
        }
    };
}

role!(
    FirstRang,
    "First rang.",
    "fRngDevNum",
    "fRngDevName",
    "fRngUsrNum",
    "fRngUsrName",
    "fRngAgtNum",
    "fRngAgtName"
);
role!(
    LastRang,
    "Last rang.",
    "lRngDevNum",
    "lRngDevName",
    "lRngUsrNum",
    "lRngUsrName",
    "lRngAgtNum",
    "lRngAgtName"
);
role!(
    Answering,
    "Answering.",
    "ansDevNum",
    "ansDevName",
    "ansUsrNum",
    "ansUsrName",
    "ansAgtNum",
    "ansAgtName"
);
role!(
    LastAnswering,
    "Last answering.",
    "lAnsDevNum",
    "lAnsDevName",
    "lAnsUsrNum",
    "lAnsUsrName",
    "lAnsAgtNum",
    "lAnsAgtName"
);

impl<R: Role> Serialize for PartyFields<R> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let p = &self.party;
        let values = [
            &p.dev_num,
            &p.dev_name,
            &p.usr_num,
            &p.usr_name,
            &p.agt_num,
            &p.agt_name,
        ];
        let mut map = s.serialize_map(None)?;
        for (name, value) in R::NAMES.iter().zip(values) {
            if let Some(v) = value {
                map.serialize_entry(name, v)?;
            }
        }
        map.end()
    }
}

impl<'de, R: Role> Deserialize<'de> for PartyFields<R> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut map = BTreeMap::<String, serde_json::Value>::deserialize(d)?;
        let mut take = |i: usize| {
            map.remove(R::NAMES[i])
                .and_then(|v| v.as_str().map(str::to_owned))
        };
        Ok(Party {
            dev_num: take(0),
            dev_name: take(1),
            usr_num: take(2),
            usr_name: take(3),
            agt_num: take(4),
            agt_name: take(5),
        }
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn party_fields_use_role_prefixes_and_omit_unknowns() {
        let f: PartyFields<LastRang> = Party {
            dev_num: Some("user_1".into()),
            dev_name: Some("(T42S) Test User".into()),
            ..Party::default()
        }
        .into();
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"lRngDevNum": "user_1", "lRngDevName": "(T42S) Test User"})
        );
        let back: PartyFields<LastRang> = serde_json::from_value(v).unwrap();
        assert_eq!(back, f);
    }
}
