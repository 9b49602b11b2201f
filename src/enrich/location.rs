//! Where a number is: `cliCtry`, `cliArea`, `cliLoc` and `cliState` from `cliNum`.
//!
//! Data ships with the build: libphonenumber's metadata (through the `phonenumber` crate) for
//! validity, region and number type, and two tables generated from libphonenumber's English
//! geocoding data by `tools/gen_geodata.py` (`data/geocoding_en.tsv`, `data/nanp_states.tsv`).
//! Nothing is fetched at run time.
//!
//! Rules (PRODUCT.md §3 "Numbers"):
//! - Only a valid number in `+E.164` form gets anything; extensions, short codes, withheld
//!   and invalid numbers get no location fields.
//! - `cliCtry` is the ISO 3166 region of the number (`US`, `CA`, `JM` for +1; `GB`, `JE` for
//!   +44).
//! - `cliArea`, `cliLoc` and `cliState` are given for geographic numbers only (fixed line, or
//!   "fixed line or mobile" where the plan does not tell them apart, as in NANP). Mobile,
//!   toll-free, premium, shared-cost, personal and VoIP numbers get the country alone: their
//!   location is unknown or meaningless.
//! - `cliArea` is the national destination code as libphonenumber groups the number in
//!   international format, without the trunk prefix (`201` for `+1 201-200-1234`, `20` for
//!   `+44 20 7183 8750`). Regions without a national prefix (closed numbering plans such as
//!   Spain's) have no separate area code and get none, as libphonenumber's
//!   `getLengthOfGeographicalAreaCode` decides; Italy is the exception it makes too.
//! - `cliLoc` is the longest-prefix geocoding description (`Jersey City, NJ`, `London`).
//! - `cliState` is the USPS code of the state of a US area code (`NJ`); none outside the US.

use std::sync::OnceLock;

use phonenumber::metadata::DATABASE;
use phonenumber::{Metadata, Mode};

/// The generated geocoding table (see `tools/gen_geodata.py` for the format).
const GEOCODING: &str = include_str!("../../data/geocoding_en.tsv");
/// The generated US area code → state table.
const NANP_STATES: &str = include_str!("../../data/nanp_states.tsv");

/// The four location fields of a number; each `None` when unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// ISO 3166 alpha-2 region (`cliCtry`).
    pub country: Option<String>,
    /// Area code (`cliArea`).
    pub area: Option<String>,
    /// Place name (`cliLoc`).
    pub place: Option<&'static str>,
    /// USPS state code, US numbers only (`cliState`).
    pub state: Option<&'static str>,
}

/// Longest-prefix table of place names.
struct Geocoder {
    /// `(prefix digits as a number, prefix length, description index)`, sorted.
    entries: Vec<(u64, u8, u32)>,
    descriptions: Vec<&'static str>,
    /// Bit `n` is set when some prefix has `n` digits.
    lengths: u32,
}

impl Geocoder {
    fn parse(text: &'static str) -> Self {
        let mut entries = Vec::new();
        let mut descriptions = Vec::new();
        let mut lengths = 0u32;
        for line in text.lines() {
            if let Some(desc) = line.strip_prefix('=') {
                descriptions.push(desc);
                continue;
            }
            let Some((prefix, index)) = line.split_once('\t') else {
                continue;
            };
            let (Ok(value), Ok(index)) = (prefix.parse::<u64>(), index.parse::<u32>()) else {
                continue;
            };
            let Ok(len) = u8::try_from(prefix.len()) else {
                continue;
            };
            if len < 32 {
                lengths |= 1 << len;
                entries.push((value, len, index));
            }
        }
        entries.sort_unstable();
        Self {
            entries,
            descriptions,
            lengths,
        }
    }

    fn get() -> &'static Self {
        static TABLE: OnceLock<Geocoder> = OnceLock::new();
        TABLE.get_or_init(|| Self::parse(GEOCODING))
    }

    /// The description of the longest prefix of `digits` in the table.
    fn describe(&self, digits: &str) -> Option<&'static str> {
        (1..=digits.len().min(31)).rev().find_map(|len| {
            if self.lengths & (1 << len) == 0 {
                return None;
            }
            let value: u64 = digits.get(..len)?.parse().ok()?;
            let len8 = u8::try_from(len).ok()?;
            let i = self
                .entries
                .binary_search_by(|e| (e.0, e.1).cmp(&(value, len8)))
                .ok()?;
            let index = usize::try_from(self.entries[i].2).ok()?;
            self.descriptions.get(index).copied()
        })
    }
}

/// The region a number belongs to, decided on its national significant number with leading
/// zeros kept. (`phonenumber`'s own `country().id()` drops them, which loses Italy's `06…`.)
fn region_metadata(code: u16, nsn: &str) -> Option<&'static Metadata> {
    let regions = DATABASE.region(&code)?;
    let metas = regions.iter().filter_map(|r| DATABASE.by_id(*r));
    let mut first = None;
    for meta in metas {
        if meta.id() == "001" {
            return None;
        }
        first.get_or_insert(meta);
        let leading = meta
            .leading_digits()
            .is_some_and(|re| re.find(nsn).is_some_and(|m| m.start() == 0));
        if leading || (meta.leading_digits().is_none() && kind_matches(meta, nsn)) {
            return Some(meta);
        }
    }
    // The main country of a shared code (its metadata comes first).
    first.filter(|m| m.descriptors().general().is_match(nsn))
}

fn kind_matches(meta: &Metadata, nsn: &str) -> bool {
    let d = meta.descriptors();
    d.general().is_match(nsn)
        && [
            d.fixed_line(),
            d.mobile(),
            d.toll_free(),
            d.premium_rate(),
            d.shared_cost(),
        ]
        .into_iter()
        .flatten()
        .any(|x| x.is_match(nsn))
}

/// libphonenumber's idea of a geographic number: fixed line (or fixed line or mobile), and
/// none of the service types it checks before fixed line.
fn is_geographic(meta: &Metadata, nsn: &str) -> bool {
    let d = meta.descriptors();
    let service = [
        d.premium_rate(),
        d.toll_free(),
        d.shared_cost(),
        d.voip(),
        d.personal_number(),
        d.pager(),
        d.uan(),
        d.voicemail(),
    ];
    d.general().is_match(nsn)
        && d.fixed_line().is_some_and(|f| f.is_match(nsn))
        && !service.into_iter().flatten().any(|x| x.is_match(nsn))
}

fn nanp_state(npa: &str) -> Option<&'static str> {
    static TABLE: OnceLock<Vec<(&'static str, &'static str)>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut v: Vec<_> = NANP_STATES
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('\t'))
            .collect();
        v.sort_unstable();
        v
    });
    table
        .binary_search_by(|(k, _)| (*k).cmp(npa))
        .ok()
        .map(|i| table[i].1)
}

/// Parses the embedded tables now (about 75 ms in a release build) instead of on the first
/// CDR that needs them.
pub fn warm_up() {
    Geocoder::get();
    nanp_state("201");
}

/// The location of `number`, which must be in `+E.164` form; an empty [`Location`] for
/// anything else (extensions, withheld, invalid numbers).
pub fn locate(number: &str) -> Location {
    let Some(digits) = number.strip_prefix('+') else {
        return Location::default();
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Location::default();
    }
    let Ok(parsed) = phonenumber::parse(None, number) else {
        return Location::default();
    };
    if !phonenumber::is_valid(&parsed) {
        return Location::default();
    }
    let nn = parsed.national();
    let nsn = format!("{}{}", "0".repeat(usize::from(nn.zeros())), nn.value());
    let Some(meta) = region_metadata(parsed.code().value(), &nsn) else {
        return Location::default();
    };
    let region = meta.id();
    let mut loc = Location {
        country: Some(region.to_owned()),
        ..Location::default()
    };
    if !is_geographic(meta, &nsn) {
        return loc;
    }
    let e164 = parsed.format().mode(Mode::E164).to_string();
    let key = e164.trim_start_matches('+');
    loc.place = Geocoder::get().describe(key);
    let has_area = region == "IT" || meta.national_prefix().is_some();
    if has_area {
        let intl = parsed.format().mode(Mode::International).to_string();
        // "+44 20 7183 8750" → ["44", "20", "7183", "8750"]: the group after the country code.
        let mut groups = intl
            .split(|c: char| !c.is_ascii_digit())
            .filter(|g| !g.is_empty());
        let _country_code = groups.next();
        if let (Some(area), Some(_)) = (groups.next(), groups.next()) {
            loc.area = Some(area.to_owned());
        }
    }
    if region == "US" {
        loc.state = key.get(1..4).and_then(nanp_state);
    }
    loc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(n: &str) -> (Option<String>, Option<String>, Option<&str>, Option<&str>) {
        let l = locate(n);
        (l.country, l.area, l.place, l.state)
    }

    #[test]
    fn us_numbers_get_city_area_and_state() {
        assert_eq!(
            fields("+12012001234"),
            (
                Some("US".into()),
                Some("201".into()),
                Some("Jersey City, NJ"),
                Some("NJ")
            )
        );
        let ny = locate("+12125551234");
        assert_eq!(ny.place, Some("New York, NY"));
        assert_eq!(ny.state, Some("NY"));
        assert_eq!(locate("+14155550123").state, Some("CA"));
        assert_eq!(locate("+19075551234").state, Some("AK"));
    }

    #[test]
    fn numbers_of_other_countries() {
        assert_eq!(
            fields("+442071838750"),
            (Some("GB".into()), Some("20".into()), Some("London"), None)
        );
        let berlin = locate("+4930123456");
        assert_eq!(berlin.country.as_deref(), Some("DE"));
        assert_eq!(berlin.area.as_deref(), Some("30"));
        assert_eq!(berlin.place, Some("Berlin"));
        let sydney = locate("+61212345678");
        assert_eq!(sydney.country.as_deref(), Some("AU"));
        assert_eq!(sydney.area.as_deref(), Some("2"));
        assert!(sydney.place.is_some());
        assert_eq!(sydney.state, None);
        // Italy keeps the leading 0 of its area codes in international format.
        let rome = locate("+390612345678");
        assert_eq!(rome.country.as_deref(), Some("IT"));
        assert_eq!(rome.area.as_deref(), Some("06"));
        assert_eq!(rome.place, Some("Rome"));
        // +39 06 698… is the Vatican, which shares Italy's country code.
        assert_eq!(locate("+390669881234").country.as_deref(), Some("VA"));
        // libphonenumber has no English descriptions for France: country and area only.
        let paris = locate("+33142685300");
        assert_eq!(paris.country.as_deref(), Some("FR"));
        assert_eq!(paris.area.as_deref(), Some("1"));
        assert_eq!(paris.place, None);
        // Canada shares +1 but has provinces, not US states.
        let toronto = locate("+14165550123");
        assert_eq!(toronto.country.as_deref(), Some("CA"));
        assert_eq!(toronto.area.as_deref(), Some("416"));
        assert_eq!(toronto.state, None);
    }

    #[test]
    fn toll_free_and_mobile_get_the_country_only() {
        assert_eq!(
            fields("+18005550199"),
            (Some("US".into()), None, None, None)
        );
        assert_eq!(
            fields("+447400123456"),
            (Some("GB".into()), None, None, None)
        );
        assert_eq!(
            fields("+4915123456789"),
            (Some("DE".into()), None, None, None)
        );
        // A Chinese mobile number: its range is not even in the table.
        assert_eq!(
            fields("+8613912345678"),
            (Some("CN".into()), None, None, None)
        );
    }

    #[test]
    fn nothing_for_extensions_withheld_and_invalid_numbers() {
        for n in [
            "1001",
            "anonymous",
            "",
            "+",
            "+1 123 456 7890",
            "+11234567890",
            "+999",
        ] {
            assert_eq!(locate(n), Location::default(), "{n:?}");
        }
    }
}
