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

/// A `dir` or `type` code the seed does not define.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{field} code {code} is not one of the seed's codes")]
pub struct UnknownCode {
    /// `dir` or `type`.
    pub field: &'static str,
    /// The code received.
    pub code: u8,
}

/// Defines a field-less enum that travels as the seed's integer code and has the seed's name
/// for each code (the names trigger filters accept).
macro_rules! coded_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $field:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $code:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(into = "u8", try_from = "u8")]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in code order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The code sent in the CDR.
            pub const fn code(self) -> u8 {
                match self {
                    $($name::$variant => $code,)+
                }
            }

            /// The seed's name of the value (`Incoming`, `External`, …).
            pub const fn name(self) -> &'static str {
                match self {
                    $($name::$variant => stringify!($variant),)+
                }
            }
        }

        impl From<$name> for u8 {
            fn from(v: $name) -> u8 {
                v.code()
            }
        }

        impl TryFrom<u8> for $name {
            type Error = UnknownCode;

            fn try_from(code: u8) -> Result<Self, UnknownCode> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.code() == code)
                    .ok_or(UnknownCode { field: $field, code })
            }
        }
    };
}

coded_enum! {
    /// `dir`: which way the session crossed the PBX's edge (PRODUCT.md §3 "Direction").
    Direction, "dir" {
        /// The origin leg could not be classified (code 0).
        #[default]
        Unknown = 0,
        /// A device called a device, no trunk leg (code 1).
        Internal = 1,
        /// The origin is a trunk and no outbound trunk leg exists (code 2).
        Incoming = 2,
        /// The origin is a device and an outbound trunk leg exists (code 3).
        Outgoing = 3,
        /// The origin is a trunk and an outbound trunk leg was created, e.g. forwarded to a
        /// mobile (code 4).
        Both = 4,
    }
}

impl Direction {
    /// A call from outside the PBX (`dir` 2 or 4): the calls that can be lost or abandoned.
    pub const fn is_external_incoming(self) -> bool {
        matches!(self, Direction::Incoming | Direction::Both)
    }
}

coded_enum! {
    /// `type`: whether any trunk took part (PRODUCT.md §3 "Direction").
    CallType, "type" {
        /// The origin cannot be classified (code 0).
        #[default]
        Unknown = 0,
        /// No trunk leg (code 1).
        Internal = 1,
        /// At least one trunk leg (code 2).
        External = 2,
    }
}

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
    /// Direction, sent as its code (0 unknown, 1 internal, 2 incoming, 3 outgoing, 4 both).
    pub dir: Direction,
    /// Type, sent as its code (0 unknown, 1 internal, 2 external).
    #[serde(rename = "type")]
    pub call_type: CallType,
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

    /// The seed's codes and names (product page, `dir` and `type` rows), as JSON integers.
    #[test]
    fn direction_and_type_travel_as_the_seeds_codes() {
        let dirs = [
            (Direction::Unknown, 0, "Unknown"),
            (Direction::Internal, 1, "Internal"),
            (Direction::Incoming, 2, "Incoming"),
            (Direction::Outgoing, 3, "Outgoing"),
            (Direction::Both, 4, "Both"),
        ];
        for (d, code, name) in dirs {
            assert_eq!((d.code(), d.name()), (code, name));
            assert_eq!(serde_json::to_string(&d).unwrap(), code.to_string());
            assert_eq!(
                serde_json::from_str::<Direction>(&code.to_string()).unwrap(),
                d
            );
        }
        assert_eq!(Direction::ALL.len(), dirs.len());
        let types = [
            (CallType::Unknown, 0, "Unknown"),
            (CallType::Internal, 1, "Internal"),
            (CallType::External, 2, "External"),
        ];
        for (t, code, name) in types {
            assert_eq!((t.code(), t.name()), (code, name));
            assert_eq!(serde_json::to_string(&t).unwrap(), code.to_string());
            assert_eq!(
                serde_json::from_str::<CallType>(&code.to_string()).unwrap(),
                t
            );
        }
        assert_eq!(CallType::ALL.len(), types.len());
        assert!(serde_json::from_str::<Direction>("5").is_err());
        assert!(serde_json::from_str::<CallType>("3").is_err());
        assert!(serde_json::from_str::<Direction>("\"Both\"").is_err());
        let external: Vec<u8> = Direction::ALL
            .iter()
            .filter(|d| d.is_external_incoming())
            .map(|d| d.code())
            .collect();
        assert_eq!(
            external,
            [2, 4],
            "PRODUCT.md §3: external incoming calls are dir 2 or 4"
        );
    }
}
