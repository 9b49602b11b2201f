//! The session CDR: the `cdr` object of every webhook payload.
//!
//! Field names, order and types follow the product page's tables and example JSON
//! (`dType` = `CloudSessionCdr`, `sVer` = 1, `lRngDevName` spelled correctly). Optional text
//! that is unknown is omitted rather than sent as `""` or `null`; the 1/0 flags, `dir`, `type`
//! and the timings are always present, and so are `recordingIds`, `directoryMatches` and
//! `tags` (possibly empty), which keeps receiver-side schemas (Azure Logic Apps) simple.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A 1/0 flag: an integer, 0 or 1 (the schema of every flag field).
fn flag(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "integer", "enum": [0, 1]})
}

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

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn inline_schema() -> bool {
                true
            }

            /// The codes, as integers (the field's own doc comment describes them).
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                let codes: Vec<u8> = $name::ALL.iter().map(|v| v.code()).collect();
                schemars::json_schema!({"type": "integer", "enum": codes})
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

/// The call data of one call session (the payload's `cdr`).
// The doc comment of each field is its description in `postcall schema` (the product page's
// meaning, made precise by PRODUCT.md §3), so every field is defined once, here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("additionalProperties" = false))]
pub struct Cdr {
    /// The session id of the CDR record: a UUID derived from the call session, the same
    /// across replays and re-sends.
    pub id: String,
    /// CDR record type: always "CloudSessionCdr".
    #[serde(rename = "dType")]
    #[schemars(extend("enum" = [CDR_TYPE]))]
    pub d_type: String,
    /// CDR version: always 1.
    #[serde(rename = "sVer")]
    #[schemars(extend("enum" = [CDR_VERSION]))]
    pub s_ver: u32,
    /// Id of the communications platform the CDR is from (configuration `[pbx] id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pbx_id: Option<String>,
    /// The configured name of the communications platform.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pbx_name: Option<String>,
    /// TZ (IANA) identifier of the call times `start`, `answer` and `end`.
    pub tz: String,
    /// Start time of the call session: when its first leg was created (RFC 3339, whole
    /// seconds, with the offset of `tz`).
    #[schemars(extend("format" = "date-time"))]
    pub start: String,
    /// Time the call was first answered: the first moment a person was connected (the PBX
    /// answering for an IVR, queue or voicemail is not an answer). Absent when never answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub answer: Option<String>,
    /// End time of the call session: when its last leg was destroyed (or the last event seen
    /// when it was force-closed).
    #[schemars(extend("format" = "date-time"))]
    pub end: String,
    /// Duration of the call in seconds (`end` − `start`).
    pub dur: u64,
    /// Ring time of the call in seconds: the time before the answer (or the end, when
    /// unanswered) during which at least one destination was alerting.
    pub ring: u64,
    /// Talk time of the call in seconds: person-connected time, not counting hold and park.
    pub talk: u64,
    /// Hold time of the call in seconds (held while connected).
    pub hold: u64,
    /// Park time of the call in seconds (parked until retrieved or hung up).
    pub park: u64,
    /// Whether the call was lost, 1/0: an unanswered external incoming call (`dir` 2 or 4)
    /// that rang longer than the short-ring threshold (default 6 s).
    #[schemars(schema_with = "flag")]
    pub lost: u8,
    /// Whether the call was abandoned whilst parked, 1/0: the parked party hung up before
    /// being retrieved.
    #[serde(rename = "lostinPark")]
    #[schemars(schema_with = "flag")]
    pub lostin_park: u8,
    /// Whether the call was a short ringing abandoned call, 1/0: an unanswered external
    /// incoming call (`dir` 2 or 4) that rang at most the short-ring threshold (default 6 s).
    /// Never 1 together with `lost`.
    #[schemars(schema_with = "flag")]
    pub aban: u8,
    /// Whether the call was answered by a person, 1/0 (1 exactly when `answer` is present).
    #[schemars(schema_with = "flag")]
    pub ans: u8,
    /// Whether the call had a short duration, 1/0: answered, with talk + hold below the
    /// short-call threshold (default 20 s).
    #[schemars(schema_with = "flag")]
    pub short: u8,
    /// Clear-down cause of the call (the origin leg's hangup cause, e.g. "NORMAL_CLEARING").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Call direction: 0 Unknown, 1 Internal, 2 Incoming, 3 Outgoing, 4 Both (came in on a
    /// trunk and went out on one, e.g. forwarded to a mobile).
    pub dir: Direction,
    /// Call type: 0 Unknown, 1 Internal (no trunk took part), 2 External.
    #[serde(rename = "type")]
    pub call_type: CallType,
    /// Whether the call was a trunk to trunk call, 1/0: two trunk legs were connected.
    #[schemars(schema_with = "flag")]
    pub t2t: u8,
    /// Caller id (CLI) number in E.164 format: the external party (the caller on incoming
    /// and "both" calls, the dialled number on outgoing calls, the calling extension on
    /// internal calls). Absent when withheld.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cli_num: Option<String>,
    /// Caller name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cli_name: Option<String>,
    /// CLI location: the place name of `cliNum` (when it is a valid E.164 number).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cli_loc: Option<String>,
    /// CLI area code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cli_area: Option<String>,
    /// CLI state (US only), from the area code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cli_state: Option<String>,
    /// CLI country (ISO 3166 code, e.g. "GB").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cli_ctry: Option<String>,
    /// DID number in E.164 format: our number (the DID dialled on incoming calls, the
    /// presented caller id on outgoing calls).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ddi_num: Option<String>,
    /// DID name.
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
    /// Prefix number: any number added to the CLI as a prefix during routing through the
    /// communications platform.
    #[serde(rename = "rteID", skip_serializing_if = "Option::is_none")]
    pub rte_id: Option<String>,
    /// Prefix name: any string added to the caller name as a prefix during routing through
    /// the communications platform.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rte_name: Option<String>,
    /// First rang group name (queue or ring group, when known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub f_rng_group_name: Option<String>,
    /// Last rang group name (queue or ring group, when known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l_rng_group_name: Option<String>,
    /// Answering group name (queue or ring group, when known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ans_group_name: Option<String>,
    /// Whether the call was recorded, 1/0.
    #[schemars(schema_with = "flag")]
    pub has_rec: u8,
    /// Whether the call has been rated, 1/0.
    #[schemars(schema_with = "flag")]
    pub rate: u8,
    /// The rate cost of the call (a decimal number).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_cost: Option<f64>,
    /// The band name of the rate applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_band: Option<String>,
    /// The name of the rate applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_name: Option<String>,
    /// Ids of the recordings of this call session, in order of appearance (empty when none).
    pub recording_ids: Vec<String>,
    /// Contact directory items matched to the caller's number, strongest match first
    /// (empty when none).
    pub directory_matches: Vec<DirectoryMatch>,
    /// Tags applied to the call as key/value pairs: callflow application variables, and
    /// system tags with value "1" (voicemail, transferred, forwarded, pickup, parked,
    /// withheld, partial, forced_close, gap, backfilled).
    pub tags: BTreeMap<String, String>,
}

/// A contact matched to the call (the product page's "CDR Contact Directory Item").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("additionalProperties" = false))]
pub struct DirectoryMatch {
    /// Name of the directory the contact is in.
    pub dir_name: String,
    /// Id of the directory.
    pub dir_id: String,
    /// Match type: always "DirectoryContactMatch".
    pub dir_type: String,
    /// Id of the contact.
    pub contact_id: String,
    /// The contact's fields, present ones only: title, fullName, companyName, jobTitle,
    /// phone1 to phone4 (E.164), email, crmId (the contact's id in an external CRM) and
    /// field1 to field10 (custom data).
    pub fields: BTreeMap<String, String>,
}

/// Who a role (first rang, answering, ...) resolved to.
#[derive(Debug, Clone, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Party {
    /// Device number (the device's SIP username).
    pub dev_num: Option<String>,
    /// Device name.
    pub dev_name: Option<String>,
    /// User number (the owner's extension).
    pub usr_num: Option<String>,
    /// User name.
    pub usr_name: Option<String>,
    /// Agent number (the ACDc agent for queue-delivered calls, else the user).
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
    /// The role as the start of a sentence ("First rang"): each field's description is this
    /// followed by the [`Party`] field's own.
    const ROLE: &'static str;
}

macro_rules! role {
    ($ty:ident, $role:literal, $($name:literal),+) => {
        #[doc = concat!($role, ".")]
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $ty;
        impl Role for $ty {
            const NAMES: [&'static str; 6] = [$($name),+];
            const ROLE: &'static str = $role;
        }
    };
}

role!(
    FirstRang,
    "First rang",
    "fRngDevNum",
    "fRngDevName",
    "fRngUsrNum",
    "fRngUsrName",
    "fRngAgtNum",
    "fRngAgtName"
);
role!(
    LastRang,
    "Last rang",
    "lRngDevNum",
    "lRngDevName",
    "lRngUsrNum",
    "lRngUsrName",
    "lRngAgtNum",
    "lRngAgtName"
);
role!(
    Answering,
    "Answering",
    "ansDevNum",
    "ansDevName",
    "ansUsrNum",
    "ansUsrName",
    "ansAgtNum",
    "ansAgtName"
);
role!(
    LastAnswering,
    "Last answering",
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

/// The role's six properties, each described as the role followed by the [`Party`] field's own
/// description ("First rang" + "device number …"), none required (unknown ones are omitted).
impl<R: Role> JsonSchema for PartyFields<R> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("PartyFields{}", R::NAMES[0]).into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let party = Party::json_schema(generator);
        let mut properties = serde_json::Map::new();
        let fields = party
            .get("properties")
            .and_then(serde_json::Value::as_object);
        for (key, field) in fields.into_iter().flatten() {
            // `devNum` is the role's `…DevNum`.
            let mut chars = key.chars();
            let suffix: String = chars
                .next()
                .map(|c| c.to_ascii_uppercase())
                .into_iter()
                .chain(chars)
                .collect();
            let Some(name) = R::NAMES.iter().find(|n| n.ends_with(&suffix)) else {
                continue;
            };
            let mut field = field.clone();
            if let Some(d) = field.get("description").and_then(serde_json::Value::as_str) {
                let mut d = d.chars();
                let lower: String = d
                    .next()
                    .map(|c| c.to_ascii_lowercase())
                    .into_iter()
                    .chain(d)
                    .collect();
                field["description"] = format!("{} {lower}", R::ROLE).into();
            }
            properties.insert((*name).to_owned(), field);
        }
        schemars::json_schema!({"type": "object", "properties": properties})
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

    /// Each role's schema has exactly the role's six field names (the ones serialisation
    /// writes), each described as the role followed by the party field's description.
    #[test]
    fn party_schemas_name_the_serialised_fields() {
        fn check<R: Role>() {
            let mut g = schemars::SchemaGenerator::default();
            let s = PartyFields::<R>::json_schema(&mut g);
            let props = s.get("properties").and_then(|p| p.as_object()).unwrap();
            let keys: Vec<&str> = props.keys().map(String::as_str).collect();
            assert_eq!(keys, R::NAMES);
            for p in props.values() {
                let d = p["description"].as_str().unwrap();
                assert!(d.starts_with(&format!("{} ", R::ROLE)), "{d}");
            }
        }
        check::<FirstRang>();
        check::<LastRang>();
        check::<Answering>();
        check::<LastAnswering>();
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
