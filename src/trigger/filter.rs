//! Compiled filter conditions: one field of the CDR, one operator, one value (PRODUCT.md §4).
//!
//! Pure and synchronous. A [`Filter`] is compiled once when a trigger set is built — field names
//! resolved to typed accessors, enum names (`External`, `Incoming`, …) resolved to their codes,
//! regular expressions compiled — so matching a CDR reads the typed [`Cdr`] directly and never
//! serialises it or allocates.
//!
//! Semantics, chosen so that every filter has one obvious reading:
//!
//! - Field names are the CDR's JSON names (`cliNum`, `lostinPark`, `rteID`), matched without
//!   regard to case; `tags.<key>` (key exact) reads a tag; `recordingIds` and
//!   `directoryMatches.<key>` (`dirName`, `dirId`, `dirType`, `contactId`, or any contact field
//!   such as `companyName`) are lists, and a positive operator holds when **any** element
//!   satisfies it.
//! - `ne` and `not_in` are exactly the negation of `eq` and `in`: a missing field is "not
//!   equal" to anything.
//! - `gt`/`ge`/`lt`/`le` apply to numeric fields only; `contains`, `starts_with`, `ends_with`
//!   and `regex` to text fields only (case-sensitive; use `(?i)` in a regex to ignore case).
//!   A misplaced operator is a validation error, never a filter that silently fails.
//! - `exists` (value `true`, the default, or `false`) tests presence: an optional text field
//!   that the CDR omits, an absent tag, an empty list. Always-present fields always exist.
//! - `type` takes `Unknown`/`Internal`/`External` (0/1/2) and `dir` takes
//!   `Unknown`/`Internal`/`Incoming`/`Outgoing`/`Both` (0–4) as well as the numbers. `Both` is
//!   code 4: a call that came in from a trunk and also went out on one (e.g. forwarded to a
//!   mobile). `dir = Incoming` is code 2 only; to catch every call that came in from outside,
//!   forwarded ones included, use `dir in [Incoming, Both]`.
//! - Flags (`ans`, `lost`, `hasRec`, …) accept `true`/`false` as well as `1`/`0`.

use std::collections::HashSet;

use regex::Regex;
use serde_json::Value;

use crate::cdr::{CallType, Cdr, Direction, DirectoryMatch};

/// Largest compiled size of one filter regular expression.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Lists of at most this many values are searched linearly; longer ones through a hash set.
const SMALL_SET: usize = 8;

type StrGet = for<'a> fn(&'a Cdr) -> Option<&'a str>;
type NumGet = fn(&Cdr) -> Option<f64>;

macro_rules! str_fields {
    ($($name:literal => |$c:ident| $e:expr),* $(,)?) => {
        /// Text fields: JSON name and accessor.
        const STR_FIELDS: &[(&str, StrGet)] = &[
            $(($name, { fn get($c: &Cdr) -> Option<&str> { $e } get })),*
        ];
    };
}

str_fields! {
    "id" => |c| Some(&c.id),
    "dType" => |c| Some(&c.d_type),
    "pbxId" => |c| c.pbx_id.as_deref(),
    "pbxName" => |c| c.pbx_name.as_deref(),
    "tz" => |c| Some(&c.tz),
    "start" => |c| Some(&c.start),
    "answer" => |c| c.answer.as_deref(),
    "end" => |c| Some(&c.end),
    "cause" => |c| c.cause.as_deref(),
    "cliNum" => |c| c.cli_num.as_deref(),
    "cliName" => |c| c.cli_name.as_deref(),
    "cliLoc" => |c| c.cli_loc.as_deref(),
    "cliArea" => |c| c.cli_area.as_deref(),
    "cliState" => |c| c.cli_state.as_deref(),
    "cliCtry" => |c| c.cli_ctry.as_deref(),
    "ddiNum" => |c| c.ddi_num.as_deref(),
    "ddiName" => |c| c.ddi_name.as_deref(),
    "fRngDevNum" => |c| c.first_rang.party.dev_num.as_deref(),
    "fRngDevName" => |c| c.first_rang.party.dev_name.as_deref(),
    "fRngUsrNum" => |c| c.first_rang.party.usr_num.as_deref(),
    "fRngUsrName" => |c| c.first_rang.party.usr_name.as_deref(),
    "fRngAgtNum" => |c| c.first_rang.party.agt_num.as_deref(),
    "fRngAgtName" => |c| c.first_rang.party.agt_name.as_deref(),
    "lRngDevNum" => |c| c.last_rang.party.dev_num.as_deref(),
    "lRngDevName" => |c| c.last_rang.party.dev_name.as_deref(),
    "lRngUsrNum" => |c| c.last_rang.party.usr_num.as_deref(),
    "lRngUsrName" => |c| c.last_rang.party.usr_name.as_deref(),
    "lRngAgtNum" => |c| c.last_rang.party.agt_num.as_deref(),
    "lRngAgtName" => |c| c.last_rang.party.agt_name.as_deref(),
    "ansDevNum" => |c| c.answering.party.dev_num.as_deref(),
    "ansDevName" => |c| c.answering.party.dev_name.as_deref(),
    "ansUsrNum" => |c| c.answering.party.usr_num.as_deref(),
    "ansUsrName" => |c| c.answering.party.usr_name.as_deref(),
    "ansAgtNum" => |c| c.answering.party.agt_num.as_deref(),
    "ansAgtName" => |c| c.answering.party.agt_name.as_deref(),
    "lAnsDevNum" => |c| c.last_answering.party.dev_num.as_deref(),
    "lAnsDevName" => |c| c.last_answering.party.dev_name.as_deref(),
    "lAnsUsrNum" => |c| c.last_answering.party.usr_num.as_deref(),
    "lAnsUsrName" => |c| c.last_answering.party.usr_name.as_deref(),
    "lAnsAgtNum" => |c| c.last_answering.party.agt_num.as_deref(),
    "lAnsAgtName" => |c| c.last_answering.party.agt_name.as_deref(),
    "rteID" => |c| c.rte_id.as_deref(),
    "rteName" => |c| c.rte_name.as_deref(),
    "fRngGroupName" => |c| c.f_rng_group_name.as_deref(),
    "lRngGroupName" => |c| c.l_rng_group_name.as_deref(),
    "ansGroupName" => |c| c.ans_group_name.as_deref(),
    "rateBand" => |c| c.rate_band.as_deref(),
    "rateName" => |c| c.rate_name.as_deref(),
}

/// How a numeric field reads names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NumKind {
    Plain,
    Flag,
    Dir,
    Type,
}

macro_rules! num_fields {
    ($($name:literal, $kind:ident => |$c:ident| $e:expr),* $(,)?) => {
        /// Numeric fields: JSON name, how names read, accessor.
        const NUM_FIELDS: &[(&str, NumKind, NumGet)] = &[
            $(($name, NumKind::$kind, { fn get($c: &Cdr) -> Option<f64> { $e } get })),*
        ];
    };
}

num_fields! {
    "sVer", Plain => |c| Some(f64::from(c.s_ver)),
    "dur", Plain => |c| Some(c.dur as f64),
    "ring", Plain => |c| Some(c.ring as f64),
    "talk", Plain => |c| Some(c.talk as f64),
    "hold", Plain => |c| Some(c.hold as f64),
    "park", Plain => |c| Some(c.park as f64),
    "lost", Flag => |c| Some(f64::from(c.lost)),
    "lostinPark", Flag => |c| Some(f64::from(c.lostin_park)),
    "aban", Flag => |c| Some(f64::from(c.aban)),
    "ans", Flag => |c| Some(f64::from(c.ans)),
    "short", Flag => |c| Some(f64::from(c.short)),
    "dir", Dir => |c| Some(f64::from(c.dir.code())),
    "type", Type => |c| Some(f64::from(c.call_type.code())),
    "t2t", Flag => |c| Some(f64::from(c.t2t)),
    "hasRec", Flag => |c| Some(f64::from(c.has_rec)),
    "rate", Flag => |c| Some(f64::from(c.rate)),
    "rateCost", Plain => |c| c.rate_cost,
}

/// The names a `dir` or `type` filter value may use for a code, from the CDR's own enums
/// (seed: `dir` 0 Unknown, 1 Internal, 2 Incoming, 3 Outgoing, 4 Both; `type` 0 Unknown,
/// 1 Internal, 2 External).
fn code_names(kind: NumKind) -> Vec<(&'static str, u8)> {
    match kind {
        NumKind::Dir => Direction::ALL
            .iter()
            .map(|d| (d.name(), d.code()))
            .collect(),
        NumKind::Type => CallType::ALL.iter().map(|t| (t.name(), t.code())).collect(),
        _ => Vec::new(),
    }
}

/// Every field name a filter accepts, canonical spelling (for error messages and tests).
pub fn field_names() -> impl Iterator<Item = &'static str> {
    STR_FIELDS
        .iter()
        .map(|(n, _)| *n)
        .chain(NUM_FIELDS.iter().map(|(n, _, _)| *n))
        .chain(["recordingIds", "directoryMatches", "tags"])
}

/// What kind of value a field holds, for a form that builds filters (see [`catalog`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldKind {
    /// Text (compared as written).
    Text,
    /// A number.
    Number,
    /// A 0/1 flag (also `true`/`false`).
    Flag,
    /// A code with names (`dir`, `type`).
    Code,
    /// A list of text values (any element may satisfy the condition).
    List,
    /// Presence only (`tags`, `directoryMatches`).
    Presence,
}

/// One entry of the filter catalog: a field name a filter accepts (`tags.<key>` and
/// `directoryMatches.<key>` stand for their families), its kind, the operators
/// [`Filter::compile`] accepts for it and, for codes, the names it reads.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FieldSpec {
    /// The name as written in a trigger (`cliNum`, `tags.<key>`).
    pub name: String,
    /// What it holds.
    pub kind: FieldKind,
    /// Operator names accepted for it, in [`Op::ALL`] order.
    pub ops: Vec<&'static str>,
    /// Names accepted for a code (`Incoming`, `External`), in code order.
    pub names: Vec<&'static str>,
}

/// The kind of value `name` holds, or `None` for a name no filter accepts.
pub fn field_kind(name: &str) -> Option<FieldKind> {
    Some(match Field::parse(name).ok()? {
        Field::Str(_) => FieldKind::Text,
        Field::Num(_, NumKind::Plain) => FieldKind::Number,
        Field::Num(_, NumKind::Flag) => FieldKind::Flag,
        Field::Num(_, NumKind::Dir | NumKind::Type) => FieldKind::Code,
        Field::Tag(_) => FieldKind::Text,
        Field::RecordingIds | Field::Dir(_) => FieldKind::List,
        Field::Tags | Field::DirMatches => FieldKind::Presence,
    })
}

/// Every field a filter accepts with the operators and names that go with it, derived from
/// the validator itself: an operator is listed when [`Filter::compile`] does not reject it
/// for the field (whatever the value), so a form built from this offers exactly what a
/// trigger file may say.
pub fn catalog() -> Vec<FieldSpec> {
    let families = [
        ("tags.<key>", "tags.key"),
        ("directoryMatches.<key>", "directoryMatches.dirName"),
    ];
    field_names()
        .map(|n| (n.to_owned(), n.to_owned()))
        .chain(families.iter().map(|(shown, probe)| ((*shown).to_owned(), (*probe).to_owned())))
        .filter_map(|(name, probe)| {
            let kind = field_kind(&probe)?;
            let ops = Op::ALL
                .iter()
                .filter(|(_, op)| {
                    !matches!(Filter::compile(&probe, *op, Some(&Value::Null)), Err(e) if e.part != FilterPart::Value)
                })
                .map(|(n, _)| *n)
                .collect();
            let names = match Field::parse(&probe) {
                Ok(Field::Num(_, k)) => code_names(k).into_iter().map(|(n, _)| n).collect(),
                _ => Vec::new(),
            };
            Some(FieldSpec { name, kind, ops, names })
        })
        .collect()
}

/// Which part of a directory match a `directoryMatches.<key>` filter reads.
#[derive(Clone, Debug, PartialEq, Eq)]
enum DirKey {
    DirName,
    DirId,
    DirType,
    ContactId,
    Field(Box<str>),
}

impl DirKey {
    fn get<'a>(&self, m: &'a DirectoryMatch) -> Option<&'a str> {
        match self {
            DirKey::DirName => Some(&m.dir_name),
            DirKey::DirId => Some(&m.dir_id),
            DirKey::DirType => Some(&m.dir_type),
            DirKey::ContactId => Some(&m.contact_id),
            DirKey::Field(k) => m.fields.get(&**k).map(String::as_str),
        }
    }
}

#[derive(Clone, Debug)]
enum Field {
    Str(StrGet),
    Num(NumGet, NumKind),
    Tag(Box<str>),
    Tags,
    RecordingIds,
    DirMatches,
    Dir(DirKey),
}

impl Field {
    fn parse(name: &str) -> Result<Self, String> {
        if let Some(key) = name.strip_prefix("tags.") {
            if key.is_empty() {
                return Err("`tags.` needs a tag name, e.g. `tags.voicemail`".into());
            }
            return Ok(Field::Tag(key.into()));
        }
        let lower = name.to_ascii_lowercase();
        if let Some(key) = lower.strip_prefix("directorymatches.") {
            // Keys keep their case (contact fields are camelCase); only the prefix is folded.
            let key = &name[name.len() - key.len()..];
            let key = key.strip_prefix("fields.").unwrap_or(key);
            return Ok(Field::Dir(match key {
                "" => return Err("`directoryMatches.` needs a key, e.g. `dirName`".into()),
                "dirName" => DirKey::DirName,
                "dirId" => DirKey::DirId,
                "dirType" => DirKey::DirType,
                "contactId" => DirKey::ContactId,
                other => DirKey::Field(other.into()),
            }));
        }
        match lower.as_str() {
            "tags" => return Ok(Field::Tags),
            "recordingids" => return Ok(Field::RecordingIds),
            "directorymatches" => return Ok(Field::DirMatches),
            _ => {}
        }
        if let Some((_, get)) = STR_FIELDS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            return Ok(Field::Str(*get));
        }
        if let Some((_, kind, get)) = NUM_FIELDS
            .iter()
            .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
        {
            return Ok(Field::Num(*get, *kind));
        }
        Err(format!(
            "unknown field {name:?}; a CDR field name (e.g. `cliNum`, `dir`, `type`), `tags.<key>`, `recordingIds` or `directoryMatches.<key>`"
        ))
    }

    fn is_text(&self) -> bool {
        matches!(
            self,
            Field::Str(_) | Field::Tag(_) | Field::RecordingIds | Field::Dir(_)
        )
    }
}

/// A filter operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Equal.
    Eq,
    /// Not equal (negation of `eq`).
    Ne,
    /// One of a list.
    In,
    /// None of a list (negation of `in`).
    NotIn,
    /// Greater than (numeric).
    Gt,
    /// Greater or equal (numeric).
    Ge,
    /// Less than (numeric).
    Lt,
    /// Less or equal (numeric).
    Le,
    /// Contains a substring (text).
    Contains,
    /// Starts with (text).
    StartsWith,
    /// Ends with (text).
    EndsWith,
    /// Present (or, with value `false`, absent).
    Exists,
    /// Matches a regular expression, unanchored (text).
    Regex,
}

impl Op {
    /// Every operator with its name in trigger files.
    pub const ALL: [(&'static str, Op); 13] = [
        ("eq", Op::Eq),
        ("ne", Op::Ne),
        ("in", Op::In),
        ("not_in", Op::NotIn),
        ("gt", Op::Gt),
        ("ge", Op::Ge),
        ("lt", Op::Lt),
        ("le", Op::Le),
        ("contains", Op::Contains),
        ("starts_with", Op::StartsWith),
        ("ends_with", Op::EndsWith),
        ("exists", Op::Exists),
        ("regex", Op::Regex),
    ];

    /// Parses an operator name (case-insensitive).
    pub fn parse(name: &str) -> Option<Op> {
        Self::ALL
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, op)| *op)
    }

    /// The operator's name in trigger files.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, op)| *op == self)
            .map_or("?", |(n, _)| n)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmp {
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Clone, Debug)]
enum StrSet {
    Small(Vec<Box<str>>),
    Large(HashSet<Box<str>>),
}

impl StrSet {
    fn new(v: Vec<Box<str>>) -> Self {
        if v.len() <= SMALL_SET {
            StrSet::Small(v)
        } else {
            StrSet::Large(v.into_iter().collect())
        }
    }

    fn contains(&self, s: &str) -> bool {
        match self {
            StrSet::Small(v) => v.iter().any(|x| &**x == s),
            StrSet::Large(h) => h.contains(s),
        }
    }
}

#[derive(Clone, Debug)]
enum Test {
    Exists(bool),
    StrEq(Box<str>),
    StrIn(StrSet),
    Contains(Box<str>),
    StartsWith(Box<str>),
    EndsWith(Box<str>),
    Regex(Regex),
    NumEq(f64),
    NumIn(Vec<f64>),
    NumCmp(Cmp, f64),
}

impl Test {
    /// The positive test on one text value.
    fn text(&self, s: &str) -> bool {
        match self {
            Test::StrEq(v) => s == &**v,
            Test::StrIn(set) => set.contains(s),
            Test::Contains(v) => s.contains(&**v),
            Test::StartsWith(v) => s.starts_with(&**v),
            Test::EndsWith(v) => s.ends_with(&**v),
            Test::Regex(re) => re.is_match(s),
            Test::Exists(want) => *want,
            Test::NumEq(_) | Test::NumIn(_) | Test::NumCmp(..) => false,
        }
    }

    fn text_opt(&self, s: Option<&str>) -> bool {
        match (self, s) {
            (Test::Exists(want), s) => s.is_some() == *want,
            (_, Some(s)) => self.text(s),
            (_, None) => false,
        }
    }

    fn texts<'a>(&self, mut items: impl Iterator<Item = &'a str>) -> bool {
        match self {
            Test::Exists(want) => items.next().is_some() == *want,
            _ => items.any(|s| self.text(s)),
        }
    }

    fn num_opt(&self, n: Option<f64>) -> bool {
        let Some(n) = n else {
            return matches!(self, Test::Exists(false));
        };
        match self {
            Test::Exists(want) => *want,
            Test::NumEq(v) => n == *v,
            Test::NumIn(vs) => vs.contains(&n),
            Test::NumCmp(Cmp::Gt, v) => n > *v,
            Test::NumCmp(Cmp::Ge, v) => n >= *v,
            Test::NumCmp(Cmp::Lt, v) => n < *v,
            Test::NumCmp(Cmp::Le, v) => n <= *v,
            _ => false,
        }
    }
}

/// One compiled condition. Build with [`Filter::compile`].
#[derive(Clone, Debug)]
pub struct Filter {
    /// `field`, `op` and `value` as written: equal keys compile to equal filters.
    key: Box<str>,
    field_name: Box<str>,
    op: Op,
    /// The value as written (`true` for a bare `exists`), for explanations.
    value: Value,
    field: Field,
    test: Test,
    negate: bool,
}

/// Where a compile error is: the part of the filter that is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterPart {
    /// The field name.
    Field,
    /// The operator.
    Op,
    /// The value.
    Value,
}

impl FilterPart {
    /// The key in the trigger file.
    pub fn key(self) -> &'static str {
        match self {
            FilterPart::Field => "field",
            FilterPart::Op => "op",
            FilterPart::Value => "value",
        }
    }
}

/// Why a filter does not compile.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FilterError {
    /// Which key is wrong.
    pub part: FilterPart,
    /// What is wrong.
    pub message: String,
}

fn err(part: FilterPart, message: impl Into<String>) -> FilterError {
    FilterError {
        part,
        message: message.into(),
    }
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

fn text_value(v: &Value) -> Result<Box<str>, FilterError> {
    match v {
        Value::String(s) => Ok(s.as_str().into()),
        other => Err(err(
            FilterPart::Value,
            format!("expected a string, found {}", describe(other)),
        )),
    }
}

fn num_value(v: &Value, kind: NumKind) -> Result<f64, FilterError> {
    let names = code_names(kind);
    match v {
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .ok_or_else(|| err(FilterPart::Value, "number out of range")),
        Value::Bool(b) if kind == NumKind::Flag => Ok(if *b { 1.0 } else { 0.0 }),
        Value::String(s) if !names.is_empty() => names
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(s))
            .map(|(_, code)| f64::from(*code))
            .ok_or_else(|| {
                let known: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
                err(
                    FilterPart::Value,
                    format!(
                        "unknown name {s:?}; one of {} or a number",
                        known.join(", ")
                    ),
                )
            }),
        other => Err(err(
            FilterPart::Value,
            format!(
                "expected a number{}, found {}",
                match kind {
                    NumKind::Flag => " or true/false",
                    NumKind::Dir | NumKind::Type => " or a name",
                    NumKind::Plain => "",
                },
                describe(other)
            ),
        )),
    }
}

fn list(v: &Value) -> Result<&[Value], FilterError> {
    match v {
        Value::Array(items) if !items.is_empty() => Ok(items),
        Value::Array(_) => Err(err(FilterPart::Value, "the list is empty")),
        other => Err(err(
            FilterPart::Value,
            format!("expected a list, found {}", describe(other)),
        )),
    }
}

impl Filter {
    /// Compiles `field op value`. `value` may be omitted only for `exists` (meaning `true`).
    ///
    /// # Errors
    /// An unknown field, an operator that does not apply to the field's type, a value of the
    /// wrong type or an unknown enum name, an empty list, or a regex that does not compile.
    pub fn compile(field_name: &str, op: Op, value: Option<&Value>) -> Result<Self, FilterError> {
        let field = Field::parse(field_name).map_err(|m| err(FilterPart::Field, m))?;
        let value = match (op, value) {
            (Op::Exists, None) => &Value::Bool(true),
            (_, Some(v)) => v,
            (_, None) => return Err(err(FilterPart::Value, "missing")),
        };
        let text = field.is_text();
        let bare_list = matches!(field, Field::Tags | Field::DirMatches);
        if bare_list && op != Op::Exists {
            return Err(err(
                FilterPart::Op,
                format!(
                    "`{field_name}` only takes `exists`; filter one entry with `{}.<key>`",
                    field_name
                ),
            ));
        }
        let kind = match field {
            Field::Num(_, k) => Some(k),
            _ => None,
        };
        let wrong = |what: &str| {
            err(
                FilterPart::Op,
                format!("`{}` applies to {what} fields only", op.name()),
            )
        };
        let test = match op {
            Op::Exists => match value {
                Value::Bool(b) => Test::Exists(*b),
                other => {
                    return Err(err(
                        FilterPart::Value,
                        format!("expected true or false, found {}", describe(other)),
                    ))
                }
            },
            Op::Eq | Op::Ne => match kind {
                Some(k) => Test::NumEq(num_value(value, k)?),
                None => Test::StrEq(text_value(value)?),
            },
            Op::In | Op::NotIn => {
                let items = list(value)?;
                match kind {
                    Some(k) => Test::NumIn(
                        items
                            .iter()
                            .map(|v| num_value(v, k))
                            .collect::<Result<_, _>>()?,
                    ),
                    None => Test::StrIn(StrSet::new(
                        items.iter().map(text_value).collect::<Result<_, _>>()?,
                    )),
                }
            }
            Op::Gt | Op::Ge | Op::Lt | Op::Le => {
                let Some(k) = kind else {
                    return Err(wrong("numeric"));
                };
                let cmp = match op {
                    Op::Gt => Cmp::Gt,
                    Op::Ge => Cmp::Ge,
                    Op::Lt => Cmp::Lt,
                    _ => Cmp::Le,
                };
                Test::NumCmp(cmp, num_value(value, k)?)
            }
            Op::Contains | Op::StartsWith | Op::EndsWith | Op::Regex => {
                if !text {
                    return Err(wrong("text"));
                }
                let s = text_value(value)?;
                match op {
                    Op::Contains => Test::Contains(s),
                    Op::StartsWith => Test::StartsWith(s),
                    Op::EndsWith => Test::EndsWith(s),
                    _ => Test::Regex(
                        regex::RegexBuilder::new(&s)
                            .size_limit(REGEX_SIZE_LIMIT)
                            .build()
                            .map_err(|e| {
                                err(
                                    FilterPart::Value,
                                    format!(
                                        "invalid regex: {}",
                                        e.to_string().lines().last().unwrap_or("")
                                    ),
                                )
                            })?,
                    ),
                }
            }
        };
        Ok(Filter {
            key: format!("{field_name}\u{1}{}\u{1}{value}", op.name()).into(),
            field_name: field_name.into(),
            op,
            value: value.clone(),
            field,
            test,
            negate: matches!(op, Op::Ne | Op::NotIn),
        })
    }

    /// Identity of the condition: two filters with the same key always agree, so a set
    /// evaluates each distinct one once per CDR.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// Relative cost of evaluating, for ordering the conditions of a trigger: cheap numeric
    /// tests first, regular expressions last (AND short-circuits, and the order never changes
    /// the result because filters are pure).
    pub(crate) fn cost(&self) -> u8 {
        let field = match self.field {
            Field::Num(..) | Field::Str(_) => 0,
            Field::Tag(_) | Field::Tags => 1,
            Field::RecordingIds | Field::DirMatches | Field::Dir(_) => 2,
        };
        let test = match self.test {
            Test::Exists(_) | Test::NumEq(_) | Test::NumCmp(..) => 0,
            Test::NumIn(_) | Test::StrEq(_) | Test::StartsWith(_) | Test::EndsWith(_) => 1,
            Test::StrIn(_) => 2,
            Test::Contains(_) => 3,
            Test::Regex(_) => 6,
        };
        field + test
    }

    /// The field name as written.
    pub fn field_name(&self) -> &str {
        &self.field_name
    }

    /// The operator.
    pub fn op(&self) -> Op {
        self.op
    }

    /// The value as written in the trigger (`true` for a bare `exists`).
    pub fn expected(&self) -> &Value {
        &self.value
    }

    /// What the CDR holds for the field, as JSON: a string or number, a list for the list
    /// fields (`recordingIds`, `directoryMatches.<key>`; tag names for `tags`, directory ids
    /// for `directoryMatches`), `null` when the CDR omits it. For explanations only: matching
    /// never builds it.
    pub fn actual(&self, cdr: &Cdr) -> Value {
        let text = |v: Option<&str>| v.map_or(Value::Null, |s| Value::String(s.to_owned()));
        let texts = |it: &mut dyn Iterator<Item = &str>| {
            Value::Array(it.map(|s| Value::String(s.to_owned())).collect())
        };
        match &self.field {
            Field::Str(get) => text(get(cdr)),
            Field::Num(get, _) => get(cdr)
                .and_then(|n| {
                    if n.fract() == 0.0 && n.abs() < 9.0e15 {
                        Some(Value::from(n as i64))
                    } else {
                        serde_json::Number::from_f64(n).map(Value::Number)
                    }
                })
                .unwrap_or(Value::Null),
            Field::Tag(k) => text(cdr.tags.get(&**k).map(String::as_str)),
            Field::Tags => texts(&mut cdr.tags.keys().map(String::as_str)),
            Field::RecordingIds => texts(&mut cdr.recording_ids.iter().map(String::as_str)),
            Field::DirMatches => {
                texts(&mut cdr.directory_matches.iter().map(|m| m.dir_id.as_str()))
            }
            Field::Dir(k) => texts(&mut cdr.directory_matches.iter().filter_map(|m| k.get(m))),
        }
    }

    /// The name of a `dir` or `type` code (`2` → `Incoming`), for explanations.
    pub fn code_name(&self, code: &Value) -> Option<&'static str> {
        let Field::Num(_, kind) = self.field else {
            return None;
        };
        let code = code.as_u64()?;
        code_names(kind)
            .into_iter()
            .find(|(_, c)| u64::from(*c) == code)
            .map(|(n, _)| n)
    }

    /// Whether the CDR satisfies the condition.
    #[inline]
    pub fn matches(&self, cdr: &Cdr) -> bool {
        let t = &self.test;
        let positive = match &self.field {
            Field::Str(get) => t.text_opt(get(cdr)),
            Field::Num(get, _) => t.num_opt(get(cdr)),
            Field::Tag(k) => t.text_opt(cdr.tags.get(&**k).map(String::as_str)),
            Field::Tags => t.texts(cdr.tags.keys().map(String::as_str)),
            Field::RecordingIds => t.texts(cdr.recording_ids.iter().map(String::as_str)),
            Field::DirMatches => t.texts(cdr.directory_matches.iter().map(|m| m.dir_id.as_str())),
            Field::Dir(k) => t.texts(cdr.directory_matches.iter().filter_map(|m| k.get(m))),
        };
        positive != self.negate
    }
}

/// A condition of a trigger that a CDR does not satisfy: the field, operator and value as
/// written, and what the CDR holds ([`Filter::actual`]).
#[derive(Clone, Debug)]
pub struct Failure<'a> {
    /// The condition.
    pub filter: &'a Filter,
    /// The CDR's value of the field (`null` when absent).
    pub actual: Value,
}

impl Failure<'_> {
    fn show(&self, v: &Value, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (v, self.filter.code_name(v)) {
            (Value::Null, _) => f.write_str("absent"),
            (_, Some(name)) => write!(f, "{v} ({name})"),
            _ => write!(f, "{v}"),
        }
    }
}

/// `ans eq 0 — the CDR has 1`, `cliCtry eq "GB" — the CDR has absent`.
impl std::fmt::Display for Failure<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} — the CDR has ",
            self.filter.field_name(),
            self.filter.op().name(),
            self.filter.expected()
        )?;
        self.show(&self.actual, f)
    }
}

/// The first of `filters` (in the order given) that `cdr` does not satisfy, decided by
/// [`Filter::matches`] — the code matching runs — with the CDR's value; `None` when all hold.
pub fn first_failure<'a>(filters: &'a [Filter], cdr: &Cdr) -> Option<Failure<'a>> {
    filters
        .iter()
        .find(|f| !f.matches(cdr))
        .map(|filter| Failure {
            filter,
            actual: filter.actual(cdr),
        })
}

#[cfg(test)]
mod tests;
