//! Contact directories and matching `cliNum` against them (`directoryMatches`).
//!
//! PRODUCT.md §3: all contacts whose normalised number equals `cliNum`, then contacts matching
//! on the national significant number, then (opt-in, per tenant) contacts matching on the
//! last 7 digits; ordered by match strength, never collapsed to one. Decisions:
//! - Every matching contact is returned once, at its strongest match; a weaker tier does not
//!   wait for the stronger ones to be empty.
//! - Within a tier, the tenant's own directory comes before the shared one, then file order.
//! - Only numbers of at least 7 digits take part (extensions and short codes never match).
//! - Only an E.164 `cliNum` is matched; internal calls (an extension as `cliNum`) get none.

use std::collections::{BTreeMap, HashMap};

use crate::cdr::DirectoryMatch;
use rlibphonenumber::{PhoneNumber, PhoneNumberFormat};

use crate::session::numbers::{self, Region};

/// `dirType` of every match.
pub const DIR_TYPE: &str = "DirectoryContactMatch";

/// Contact fields carried into `directoryMatches[].fields`, in the product page's names.
pub const CONTACT_FIELDS: [&str; 20] = [
    "title",
    "fullName",
    "companyName",
    "jobTitle",
    "phone1",
    "phone2",
    "phone3",
    "phone4",
    "email",
    "crmId",
    "field1",
    "field2",
    "field3",
    "field4",
    "field5",
    "field6",
    "field7",
    "field8",
    "field9",
    "field10",
];

/// The phone fields a contact is matched on.
pub const PHONE_FIELDS: [&str; 4] = ["phone1", "phone2", "phone3", "phone4"];

/// Fewest digits a number needs to take part in matching.
const MIN_MATCH_DIGITS: usize = 7;

/// How a contact matched, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MatchKind {
    /// Same E.164 number.
    Exact,
    /// Same national significant number.
    National,
    /// Same last 7 digits (opt-in).
    Last7,
}

/// One contact: its id and the fields sent with a match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// `contactId`.
    pub id: String,
    /// Present fields by their product-page name (`fullName`, `phone1`, `field10`, ...).
    pub fields: BTreeMap<String, String>,
}

/// One directory, indexed for matching.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    /// `dirId`.
    pub id: String,
    /// `dirName`.
    pub name: String,
    contacts: Vec<Contact>,
    exact: HashMap<String, Vec<usize>>,
    national: HashMap<String, Vec<usize>>,
    last7: HashMap<String, Vec<usize>>,
}

/// National significant number digits (leading zeros kept) of a number read in `region`.
fn national_digits(raw: &str, region: Region) -> Option<String> {
    let parsed = PhoneNumber::parse(raw, Some(region)).ok()?;
    let s = parsed.get_national_significant_number();
    (s.len() >= MIN_MATCH_DIGITS).then_some(s)
}

fn last7(raw: &str) -> Option<String> {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    let n = digits.len();
    (n >= MIN_MATCH_DIGITS).then(|| digits[n - MIN_MATCH_DIGITS..].to_owned())
}

impl Directory {
    /// Indexes `contacts`, reading numbers not in international form in `region`.
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        contacts: Vec<Contact>,
        region: Region,
    ) -> Self {
        let mut d = Self {
            id: id.into(),
            name: name.into(),
            ..Self::default()
        };
        for (i, c) in contacts.iter().enumerate() {
            for raw in PHONE_FIELDS.iter().filter_map(|f| c.fields.get(*f)) {
                let add = |map: &mut HashMap<String, Vec<usize>>, key: Option<String>| {
                    if let Some(k) = key {
                        let list = map.entry(k).or_default();
                        if list.last() != Some(&i) {
                            list.push(i);
                        }
                    }
                };
                add(&mut d.exact, numbers::to_e164(raw, region));
                add(&mut d.national, national_digits(raw, region));
                add(&mut d.last7, last7(raw));
            }
        }
        d.contacts = contacts;
        d
    }

    /// Number of contacts.
    pub fn len(&self) -> usize {
        self.contacts.len()
    }

    /// True when the directory has no contacts.
    pub fn is_empty(&self) -> bool {
        self.contacts.is_empty()
    }
}

/// Matches `cli` (the CDR's `cliNum`) against `directories`, highest priority first.
pub fn find_matches(
    directories: &[&Directory],
    cli: &str,
    with_last7: bool,
) -> Vec<(MatchKind, DirectoryMatch)> {
    if !cli.starts_with('+') {
        return Vec::new();
    }
    let Some(parsed) = numbers::parse_valid(cli, None) else {
        return Vec::new();
    };
    let e164 = parsed.format_as(PhoneNumberFormat::E164).into_owned();
    let national = parsed.get_national_significant_number();
    let tail = last7(&e164);

    // (kind, directory priority, contact index)
    let mut found: Vec<(MatchKind, usize, usize)> = Vec::new();
    for (p, dir) in directories.iter().enumerate() {
        let mut best: HashMap<usize, MatchKind> = HashMap::new();
        let mut note = |kind: MatchKind, hits: Option<&Vec<usize>>| {
            for &i in hits.into_iter().flatten() {
                best.entry(i).or_insert(kind);
            }
        };
        note(MatchKind::Exact, dir.exact.get(&e164));
        if national.len() >= MIN_MATCH_DIGITS {
            note(MatchKind::National, dir.national.get(&national));
        }
        if with_last7 {
            note(
                MatchKind::Last7,
                tail.as_ref().and_then(|t| dir.last7.get(t)),
            );
        }
        found.extend(best.into_iter().map(|(i, k)| (k, p, i)));
    }
    found.sort_unstable();
    found
        .into_iter()
        .map(|(kind, p, i)| {
            let dir = directories[p];
            let c = &dir.contacts[i];
            let item = DirectoryMatch {
                dir_name: dir.name.clone(),
                dir_id: dir.id.clone(),
                dir_type: DIR_TYPE.to_owned(),
                contact_id: c.id.clone(),
                fields: c.fields.clone(),
            };
            (kind, item)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(id: &str, name: &str, phones: &[&str]) -> Contact {
        let mut fields = BTreeMap::new();
        fields.insert("fullName".to_owned(), name.to_owned());
        for (f, p) in PHONE_FIELDS.iter().zip(phones) {
            fields.insert((*f).to_owned(), (*p).to_owned());
        }
        Contact {
            id: id.to_owned(),
            fields,
        }
    }

    fn ids(m: &[(MatchKind, DirectoryMatch)]) -> Vec<(MatchKind, &str, &str)> {
        m.iter()
            .map(|(k, d)| (*k, d.dir_name.as_str(), d.contact_id.as_str()))
            .collect()
    }

    #[test]
    fn order_is_strength_then_directory_then_file_order_and_all_are_kept() {
        let own = Directory::new(
            "d1",
            "Tenant",
            vec![
                contact("c1", "Last seven", &["+1 303 555 0100"]),
                contact("c2", "Exact, national form", &["(202) 555-0100"]),
                contact("c3", "Exact too", &["+12025550100", "+442071838750"]),
                contact("c4", "No match", &["+12025550199"]),
                contact("c5", "Extension only", &["100"]),
            ],
            Region::US,
        );
        let shared = Directory::new(
            "d2",
            "My Global",
            vec![
                // Stored in a UK directory without +1: the national number is the same.
                contact("g1", "National only", &["2025550100"]),
                contact("g2", "Exact shared", &["+1-202-555-0100"]),
            ],
            Region::GB,
        );
        let m = find_matches(&[&own, &shared], "+12025550100", true);
        assert_eq!(
            ids(&m),
            vec![
                (MatchKind::Exact, "Tenant", "c2"),
                (MatchKind::Exact, "Tenant", "c3"),
                (MatchKind::Exact, "My Global", "g2"),
                (MatchKind::National, "My Global", "g1"),
                (MatchKind::Last7, "Tenant", "c1"),
            ]
        );
        let first = &m[0].1;
        assert_eq!(first.dir_id, "d1");
        assert_eq!(first.dir_type, "DirectoryContactMatch");
        assert_eq!(first.fields["fullName"], "Exact, national form");
        // Last-7 is opt-in.
        let without = find_matches(&[&own, &shared], "+12025550100", false);
        assert_eq!(without.len(), 4);
        assert!(without.iter().all(|(k, _)| *k != MatchKind::Last7));
    }

    #[test]
    fn nothing_for_extensions_or_invalid_numbers() {
        let d = Directory::new(
            "d",
            "D",
            vec![contact("c5", "Extension", &["1001"])],
            Region::US,
        );
        assert!(find_matches(&[&d], "1001", true).is_empty());
        assert!(find_matches(&[&d], "+11234567890", true).is_empty());
    }
}
