//! Reading contact directories (CSV, JSON) and rate decks (CSV) from files.
//!
//! Every problem is a typed [`FileError`] naming the file and, where there is one, the line
//! (1-based; a CSV file's header is line 1). Formats are documented in the README
//! ("Enrichment").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::directory::{Contact, Directory, CONTACT_FIELDS, PHONE_FIELDS};
use super::rating::{to_units, Rate, RateDeck, MAX_PREFIX_DIGITS};
use crate::session::numbers::{self, Region};

/// A reference file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// The file could not be read.
    #[error("{}: cannot read: {message}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// The OS error.
        message: String,
    },
    /// The file's name does not tell its format.
    #[error("{}: unknown format: contacts files end in .csv or .json", file.display())]
    Format {
        /// The file.
        file: PathBuf,
    },
    /// A line is not acceptable.
    #[error("{}:{line}: {message}", file.display())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// 1-based line (0 when the parser could not tell).
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// A warning, not an error: a contact's phone number that is not a valid number in the
    /// directory's region. The file is used; that number never matches a call.
    #[error("{}:{line}: warning: {message}", file.display())]
    UnreadableNumber {
        /// The file.
        file: PathBuf,
        /// 1-based line of the contact (0 when it cannot be found).
        line: u64,
        /// Which contact and number.
        message: String,
    },
}

impl FileError {
    /// The file the error is about.
    pub fn file(&self) -> &Path {
        match self {
            Self::Read { file, .. }
            | Self::Format { file }
            | Self::Invalid { file, .. }
            | Self::UnreadableNumber { file, .. } => file,
        }
    }

    /// True for a warning: the file was used all the same.
    pub fn is_warning(&self) -> bool {
        matches!(self, Self::UnreadableNumber { .. })
    }
}

fn read(file: &Path) -> Result<String, FileError> {
    std::fs::read_to_string(file).map_err(|e| FileError::Read {
        file: file.to_owned(),
        message: e.to_string(),
    })
}

fn invalid(file: &Path, line: u64, message: impl Into<String>) -> FileError {
    FileError::Invalid {
        file: file.to_owned(),
        line,
        message: message.into(),
    }
}

fn csv_reader(text: &str) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .flexible(false)
        .from_reader(text.as_bytes())
}

fn csv_error(file: &Path, e: &csv::Error) -> FileError {
    let line = e.position().map_or(0, csv::Position::line);
    let message = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} fields where the header has {expected_len}"),
        csv::ErrorKind::Utf8 { .. } => "not UTF-8".to_owned(),
        _ => e.to_string(),
    };
    invalid(file, line, message)
}

/// Where a directory's `dirId` and `dirName` come from when the file does not say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectoryNames {
    /// Configured `dirId`.
    pub id: Option<String>,
    /// Configured `dirName`.
    pub name: Option<String>,
}

/// Loads a contact directory (`.csv` or `.json`), reading national numbers in `region`, with
/// a [`FileError::UnreadableNumber`] warning for every phone number that is not a valid
/// number there (the contact is kept; that number never matches).
///
/// `dirId`/`dirName`: the configured values, else the JSON file's `id`/`name`, else the file
/// stem.
///
/// # Errors
/// The first problem found, with its line.
pub fn load_directory(
    file: &Path,
    names: &DirectoryNames,
    region: Region,
) -> Result<(Directory, Vec<FileError>), FileError> {
    let ext = file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let text = match ext.as_deref() {
        Some("csv" | "json") => read(file)?,
        _ => {
            return Err(FileError::Format {
                file: file.to_owned(),
            })
        }
    };
    let (file_id, file_name, contacts) = if ext.as_deref() == Some("csv") {
        (None, None, contacts_csv(file, &text)?)
    } else {
        contacts_json(file, &text)?
    };
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let id = names.id.clone().or(file_id).unwrap_or_else(|| stem.clone());
    let name = names.name.clone().or(file_name).unwrap_or(stem);
    let warnings = contacts
        .iter()
        .flat_map(|(c, line)| {
            unreadable_numbers(c, region).map(move |(field, raw)| FileError::UnreadableNumber {
                file: file.to_owned(),
                line: *line,
                message: format!(
                    "contact {:?}: {field} {raw:?} is not a valid number in {region} (it will \
                     never match a call; write it as +E.164 or in {region}'s national form)",
                    c.id
                ),
            })
        })
        .collect();
    let contacts = contacts.into_iter().map(|(c, _)| c).collect();
    Ok((Directory::new(id, name, contacts, region), warnings))
}

/// The phone fields of `contact` that are not valid numbers read in `region`.
fn unreadable_numbers(
    contact: &Contact,
    region: Region,
) -> impl Iterator<Item = (&'static str, &str)> {
    PHONE_FIELDS.into_iter().filter_map(move |field| {
        let raw = contact.fields.get(field)?;
        numbers::to_e164(raw, region)
            .is_none()
            .then_some((field, raw.as_str()))
    })
}

/// Contacts with the line each starts on.
type Lined = Vec<(Contact, u64)>;

fn contacts_csv(file: &Path, text: &str) -> Result<Lined, FileError> {
    let mut rdr = csv_reader(text);
    let headers = rdr.headers().map_err(|e| csv_error(file, &e))?.clone();
    let mut id_col = None;
    for (i, h) in headers.iter().enumerate() {
        if h == "contactId" {
            id_col = Some(i);
        } else if !CONTACT_FIELDS.contains(&h) {
            return Err(invalid(
                file,
                1,
                format!(
                    "unknown column {h:?} (known: contactId, {})",
                    CONTACT_FIELDS.join(", ")
                ),
            ));
        }
    }
    let id_col = id_col.ok_or_else(|| invalid(file, 1, "no contactId column"))?;
    let mut contacts = Vec::new();
    for record in rdr.records() {
        let record = record.map_err(|e| csv_error(file, &e))?;
        let line = record.position().map_or(0, csv::Position::line);
        let id = record.get(id_col).unwrap_or_default();
        if id.is_empty() {
            return Err(invalid(file, line, "empty contactId"));
        }
        let fields = headers
            .iter()
            .zip(record.iter())
            .filter(|(h, v)| *h != "contactId" && !v.is_empty())
            .map(|(h, v)| (h.to_owned(), v.to_owned()))
            .collect();
        contacts.push((
            Contact {
                id: id.to_owned(),
                fields,
            },
            line,
        ));
    }
    Ok(contacts)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonDirectory {
    id: Option<String>,
    name: Option<String>,
    contacts: Vec<JsonContact>,
}

#[derive(Deserialize)]
struct JsonContact {
    #[serde(rename = "contactId", deserialize_with = "non_empty")]
    contact_id: String,
    #[serde(flatten)]
    fields: BTreeMap<String, String>,
}

fn non_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.trim().is_empty() {
        return Err(serde::de::Error::custom("empty contactId"));
    }
    Ok(s)
}

type JsonContacts = (Option<String>, Option<String>, Lined);

fn contacts_json(file: &Path, text: &str) -> Result<JsonContacts, FileError> {
    let dir: JsonDirectory = serde_json::from_str(text).map_err(|e| {
        let msg = e.to_string();
        // serde_json appends " at line L column C"; the line is reported separately.
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
        invalid(file, u64::try_from(e.line()).unwrap_or(0), msg)
    })?;
    let mut contacts = Vec::with_capacity(dir.contacts.len());
    for (n, c) in dir.contacts.into_iter().enumerate() {
        if let Some(k) = c
            .fields
            .keys()
            .find(|k| !CONTACT_FIELDS.contains(&k.as_str()))
        {
            // Line numbers are lost once parsed; find the contact's id in the text instead.
            let line = line_of(text, &c.contact_id);
            return Err(invalid(
                file,
                line,
                format!(
                    "contact {} ({:?}): unknown field {k:?}",
                    n + 1,
                    c.contact_id
                ),
            ));
        }
        let fields = c
            .fields
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .collect();
        let line = line_of(text, &c.contact_id);
        contacts.push((
            Contact {
                id: c.contact_id,
                fields,
            },
            line,
        ));
    }
    Ok((dir.id, dir.name, contacts))
}

/// 1-based line of the first occurrence of `"value"` in `text` (0 when absent).
fn line_of(text: &str, value: &str) -> u64 {
    let needle = format!("{value:?}");
    text.find(&needle).map_or(0, |at| {
        u64::try_from(text[..at].matches('\n').count() + 1).unwrap_or(0)
    })
}

/// Rate deck columns postcall uses.
pub const RATE_COLUMNS: [&str; 10] = [
    "prefix",
    "rate_cost",
    "rate_increment",
    "rate_minimum",
    "rate_surcharge",
    "rate_nocharge_time",
    "rate_name",
    "description",
    "direction",
    "weight",
];

/// Kazoo rate columns accepted and ignored (routing filters, carrier bookkeeping).
pub const IGNORED_RATE_COLUMNS: [&str; 12] = [
    "id",
    "iso_country_code",
    "carrier",
    "rate_suffix",
    "internal_rate_cost",
    "ratedeck_id",
    "ratedeck_name",
    "rate_version",
    "routes",
    "caller_id_numbers",
    "options",
    "account_id",
];

/// Loads a rate deck (CSV with a header row of Kazoo rate field names).
///
/// # Errors
/// The first problem found, with its line.
pub fn load_rate_deck(file: &Path) -> Result<RateDeck, FileError> {
    let text = read(file)?;
    parse_rate_deck(file, &text)
}

/// Parses rate-deck CSV text; `file` only names the source in errors.
///
/// # Errors
/// The first problem found, with its line.
pub fn parse_rate_deck(file: &Path, text: &str) -> Result<RateDeck, FileError> {
    let mut rdr = csv_reader(text);
    let headers = rdr.headers().map_err(|e| csv_error(file, &e))?.clone();
    let mut col: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, h) in headers.iter().enumerate() {
        if let Some(name) = RATE_COLUMNS.iter().find(|c| **c == h) {
            if col.insert(name, i).is_some() {
                return Err(invalid(file, 1, format!("column {h:?} twice")));
            }
        } else if !IGNORED_RATE_COLUMNS.contains(&h) {
            return Err(invalid(
                file,
                1,
                format!("unknown column {h:?} (known: {})", RATE_COLUMNS.join(", ")),
            ));
        }
    }
    for required in ["prefix", "rate_cost"] {
        if !col.contains_key(required) {
            return Err(invalid(file, 1, format!("no {required} column")));
        }
    }
    let mut rates = Vec::new();
    for record in rdr.records() {
        let record = record.map_err(|e| csv_error(file, &e))?;
        let line = record.position().map_or(0, csv::Position::line);
        let get = |name: &str| {
            col.get(name)
                .and_then(|&i| record.get(i))
                .filter(|v| !v.is_empty())
        };
        let bad =
            |name: &str, v: &str, what: &str| invalid(file, line, format!("{name} {v:?}: {what}"));
        let prefix = get("prefix").unwrap_or_default();
        let prefix = prefix.strip_prefix('+').unwrap_or(prefix);
        if prefix.is_empty()
            || prefix.len() > MAX_PREFIX_DIGITS
            || !prefix.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad("prefix", prefix, "not 1 to 15 digits"));
        }
        let money = |name: &str| -> Result<Option<i64>, FileError> {
            get(name)
                .map(|v| {
                    v.parse::<f64>()
                        .ok()
                        .filter(|x| *x >= 0.0)
                        .and_then(to_units)
                        .ok_or_else(|| bad(name, v, "not a non-negative amount"))
                })
                .transpose()
        };
        let secs = |name: &str, default: u64| -> Result<u64, FileError> {
            get(name).map_or(Ok(default), |v| {
                v.parse::<u64>()
                    .map_err(|_| bad(name, v, "not a whole number of seconds"))
            })
        };
        let cost_units = money("rate_cost")?.ok_or_else(|| bad("rate_cost", "", "missing"))?;
        let weight = get("weight").map_or(Ok(100), |v| {
            v.parse::<i64>()
                .map_err(|_| bad("weight", v, "not an integer"))
        })?;
        let (inbound, outbound) = match get("direction") {
            None => (true, true),
            Some(v) => {
                let mut dirs = (false, false);
                for d in v
                    .split(|c: char| c == ',' || c == ';' || c == '|' || c.is_whitespace())
                    .filter(|d| !d.is_empty())
                {
                    match d.to_ascii_lowercase().as_str() {
                        "inbound" => dirs.0 = true,
                        "outbound" => dirs.1 = true,
                        "both" => dirs = (true, true),
                        _ => return Err(bad("direction", v, "use inbound, outbound or both")),
                    }
                }
                dirs
            }
        };
        rates.push(Rate {
            prefix: prefix.to_owned(),
            cost_units,
            increment_secs: secs("rate_increment", 60)?,
            minimum_secs: secs("rate_minimum", 60)?,
            surcharge_units: money("rate_surcharge")?.unwrap_or(0),
            nocharge_secs: secs("rate_nocharge_time", 0)?,
            name: get("rate_name").map(str::to_owned),
            description: get("description").map(str::to_owned),
            inbound,
            outbound,
            weight,
        });
    }
    Ok(RateDeck::new(rates))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deck_err(text: &str) -> String {
        parse_rate_deck(Path::new("deck.csv"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn rate_deck_parses_kazoo_columns_with_defaults() {
        let deck = parse_rate_deck(
            Path::new("deck.csv"),
            "prefix,rate_cost,rate_name,description,direction,iso_country_code\n\
             # a comment\n\
             +44,0.02,UK,international,outbound,GB\n\
             1,0.01,US,,,US\n",
        )
        .unwrap();
        assert_eq!(deck.len(), 2);
        let uk = &deck.rates()[0];
        assert_eq!(uk.prefix, "44");
        assert_eq!(uk.cost_units, 200);
        assert_eq!((uk.increment_secs, uk.minimum_secs), (60, 60));
        assert!(!uk.inbound && uk.outbound);
        let us = &deck.rates()[1];
        assert!(us.inbound && us.outbound);
        assert_eq!(us.description, None);
        assert_eq!(us.weight, 100);
    }

    #[test]
    fn spreadsheet_exports_with_a_byte_order_mark_and_crlf_parse() {
        let deck = parse_rate_deck(
            Path::new("deck.csv"),
            "\u{feff}prefix,rate_cost\r\n44,0.02\r\n",
        )
        .unwrap();
        assert_eq!(deck.rates()[0].prefix, "44");
    }

    #[test]
    fn rate_deck_errors_have_file_and_line() {
        assert_eq!(
            deck_err("prefix,rate_cost\n1,0.01\n44x,0.02\n"),
            "deck.csv:3: prefix \"44x\": not 1 to 15 digits"
        );
        assert_eq!(
            deck_err("prefix,rate_cost,rate_minimum\n1,0.01,-5\n"),
            "deck.csv:2: rate_minimum \"-5\": not a whole number of seconds"
        );
        assert_eq!(
            deck_err("prefix,rate_cost\n1,cheap\n"),
            "deck.csv:2: rate_cost \"cheap\": not a non-negative amount"
        );
        assert_eq!(
            deck_err("prefix,cost\n1,0.01\n"),
            "deck.csv:1: unknown column \"cost\" (known: prefix, rate_cost, rate_increment, \
             rate_minimum, rate_surcharge, rate_nocharge_time, rate_name, description, \
             direction, weight)"
        );
        assert_eq!(deck_err("prefix\n1\n"), "deck.csv:1: no rate_cost column");
        assert_eq!(
            deck_err("prefix,rate_cost\n1,0.01\n2,0.01,x\n"),
            "deck.csv:3: 3 fields where the header has 2"
        );
        assert_eq!(
            deck_err("prefix,rate_cost,direction\n1,0.01,sideways\n"),
            "deck.csv:2: direction \"sideways\": use inbound, outbound or both"
        );
    }

    #[test]
    fn contacts_from_csv_and_json() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("crm.csv");
        std::fs::write(
            &csv,
            "contactId,fullName,companyName,phone1,phone2\n\
             c1,Ada Lovelace,Engines Ltd,+442071838750,\n",
        )
        .unwrap();
        let (d, warnings) = load_directory(&csv, &DirectoryNames::default(), Region::GB).unwrap();
        assert_eq!((d.id.as_str(), d.name.as_str(), d.len()), ("crm", "crm", 1));
        assert_eq!(warnings, []);

        let json = dir.path().join("global.json");
        std::fs::write(
            &json,
            r#"{"id": "g-1", "name": "My Global", "contacts": [
                {"contactId": "c1", "fullName": "A", "phone1": "+12025550100"},
                {"contactId": "c2", "fullName": "B", "field10": "301"}
            ]}"#,
        )
        .unwrap();
        let names = DirectoryNames {
            id: None,
            name: Some("Renamed".into()),
        };
        let (d, _) = load_directory(&json, &names, Region::US).unwrap();
        assert_eq!(
            (d.id.as_str(), d.name.as_str(), d.len()),
            ("g-1", "Renamed", 2)
        );
    }

    #[test]
    fn unreadable_contact_numbers_are_reported_with_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("crm.csv");
        std::fs::write(
            &csv,
            "contactId,fullName,phone1,phone2\n\
             # a comment line\n\
             c1,Ada,020 7183 8750,\n\
             c2,Bea,07700 900456,+4915123456789\n\
             c3,Cy,1005,call me\n",
        )
        .unwrap();
        let (d, warnings) = load_directory(&csv, &DirectoryNames::default(), Region::GB).unwrap();
        assert_eq!(d.len(), 3, "contacts with unreadable numbers are kept");
        let shown: Vec<String> = warnings
            .iter()
            .map(|w| {
                assert!(w.is_warning());
                w.to_string()
                    .replace(&dir.path().display().to_string(), "DIR")
            })
            .collect();
        let tail = "(it will never match a call; write it as +E.164 or in GB's national form)";
        assert_eq!(
            shown,
            [
                format!("DIR/crm.csv:4: warning: contact \"c2\": phone1 \"07700 900456\" is not a valid number in GB {tail}"),
                format!("DIR/crm.csv:5: warning: contact \"c3\": phone1 \"1005\" is not a valid number in GB {tail}"),
                format!("DIR/crm.csv:5: warning: contact \"c3\": phone2 \"call me\" is not a valid number in GB {tail}"),
            ]
        );

        let json = dir.path().join("g.json");
        std::fs::write(
            &json,
            "{\"contacts\": [\n {\"contactId\": \"a\", \"phone1\": \"+14155550123\"},\n \
             {\"contactId\": \"b\", \"phone3\": \"555-01\"}\n]}",
        )
        .unwrap();
        let (_, warnings) = load_directory(&json, &DirectoryNames::default(), Region::US).unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0]
                .to_string()
                .contains("g.json:3: warning: contact \"b\": phone3 \"555-01\""),
            "{}",
            warnings[0]
        );
    }

    #[test]
    fn contact_errors_have_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let load = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            load_directory(&p, &DirectoryNames::default(), Region::US)
                .unwrap_err()
                .to_string()
                .replace(&dir.path().display().to_string(), "DIR")
        };
        assert_eq!(
            load("a.csv", "contactId,fullName\nc1,A\n,B\n"),
            "DIR/a.csv:3: empty contactId"
        );
        assert_eq!(
            load("b.csv", "contactId,nickname\nc1,A\n"),
            format!(
                "DIR/b.csv:1: unknown column \"nickname\" (known: contactId, {})",
                CONTACT_FIELDS.join(", ")
            )
        );
        assert_eq!(
            load(
                "c.json",
                "{\"contacts\": [\n {\"contactId\": \"c1\"},\n {\"fullName\": \"x\"}\n]}"
            ),
            "DIR/c.json:3: missing field `contactId`"
        );
        assert_eq!(
            load(
                "d.json",
                "{\"contacts\": [\n {\"contactId\": \"c1\",\n  \"nick\": \"x\"}\n]}"
            ),
            "DIR/d.json:2: contact 1 (\"c1\"): unknown field \"nick\""
        );
        assert!(load("e.txt", "x").ends_with("unknown format: contacts files end in .csv or .json"));
        assert!(
            load("f.json", "{\"contacts\": [\n {\"contactId\": 5}]}").starts_with("DIR/f.json:2: ")
        );
    }
}
