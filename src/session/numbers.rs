//! Telephone numbers: E.164 normalisation with a default region, and withheld caller ids.
//!
//! Parsing, validation and formatting are libphonenumber's, through `rlibphonenumber` (a
//! port of it whose metadata release, 9.0.42, is the one `tools/` generates the location data
//! and the reference table from). Its answers were compared with libphonenumber's own Python
//! port on 43 726 inputs from every region (`tests/it/numbers.rs`): they agree on every one.
//!
//! Rules (PRODUCT.md §3 "Numbers"):
//! - A number in international form (`+44…`, or the tenant's international prefix such as
//!   `00 44…` / `011 44…`) is read on its own country code; the tenant's region is used only
//!   to read national input (`020 7183 8750` in GB).
//! - National input of fewer than 7 digits is an extension or a short code and is never
//!   rewritten (`1001` stays `1001`), even where a tiny numbering plan would accept it.
//! - A number that is not valid in libphonenumber's reading is kept as given.

use std::cell::RefCell;

use foldhash::HashMap;
use rlibphonenumber::{PhoneNumber, PhoneNumberFormat, PHONE_NUMBER_UTIL};

/// An ISO 3166 region as libphonenumber knows it (`US`, `GB`, `001` for non-geographic codes).
pub type Region = rlibphonenumber::Region;

/// National input with fewer digits than this is an extension or short code.
const MIN_NATIONAL_DIGITS: usize = 7;

/// Distinct numbers [`to_e164`] remembers per thread before it starts over.
const MEMO_CAPACITY: usize = 4096;

/// `raw → (region, E.164 form)`.
type Memo = HashMap<Box<str>, (Region, Option<Box<str>>)>;

thread_local! {
    /// Recent [`to_e164`] results. Parsing and validating costs a few µs (regex look-ups
    /// against the region's metadata), and the same numbers recur constantly
    /// (a tenant's DIDs on every inbound call, repeat callers, the same number read for CLI,
    /// DDI and billing), so the pure result is memoised.
    static E164_MEMO: RefCell<Memo> = RefCell::new(Memo::default());
}

/// Caller-id values carriers and phones use for a withheld number.
const WITHHELD: [&str; 8] = [
    "anonymous",
    "restricted",
    "private",
    "unavailable",
    "unknown",
    "withheld",
    "blocked",
    "0000000000",
];

/// True when a caller-id number means "withheld".
pub fn is_withheld(number: Option<&str>) -> bool {
    match number.map(str::trim) {
        None | Some("") => true,
        Some(n) => {
            let lower = n.to_ascii_lowercase();
            WITHHELD.iter().any(|w| lower.starts_with(w))
        }
    }
}

/// The region for an ISO 3166 alpha-2 code (any case), when libphonenumber has a numbering
/// plan for it; `None` for unknown codes (`XX`) and for `001`.
pub fn region(code: &str) -> Option<Region> {
    let region = code.parse::<Region>().ok()?;
    (region != Region::World
        && PHONE_NUMBER_UTIL
            .get_country_code_for_region(region)
            .is_some())
    .then_some(region)
}

/// A number as the CDR carries it: E.164 when it is a valid number in `region`'s reading,
/// otherwise the value as given (an extension stays `1001`).
pub fn normalise(raw: &str, region: Region) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    Some(to_e164(raw, region).unwrap_or_else(|| raw.to_owned()))
}

/// E.164 form of a valid number, else `None`.
pub fn to_e164(raw: &str, region: Region) -> Option<String> {
    let raw = raw.trim();
    let digits = raw.bytes().filter(u8::is_ascii_digit).count();
    if !raw.starts_with('+') && digits < MIN_NATIONAL_DIGITS {
        return None;
    }
    let hit = E164_MEMO.with_borrow(|memo| match memo.get(raw) {
        Some((r, e164)) if *r == region => Some(e164.as_deref().map(str::to_owned)),
        _ => None,
    });
    if let Some(e164) = hit {
        return e164;
    }
    let e164 = parse_e164(raw, region);
    E164_MEMO.with_borrow_mut(|memo| {
        if memo.len() >= MEMO_CAPACITY {
            memo.clear();
        }
        memo.insert(raw.into(), (region, e164.as_deref().map(Into::into)));
    });
    e164
}

/// [`to_e164`] without the memo.
fn parse_e164(raw: &str, region: Region) -> Option<String> {
    parse_valid(raw, Some(region)).map(|n| n.format_as(PhoneNumberFormat::E164).into_owned())
}

/// `raw` read as libphonenumber reads it (national input in `region`; without a region only
/// `+…` input parses), when it is a valid number.
pub fn parse_valid(raw: &str, region: Option<Region>) -> Option<PhoneNumber> {
    PhoneNumber::parse(raw, region)
        .ok()
        .filter(PhoneNumber::is_valid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_with_region() {
        assert_eq!(
            to_e164("+14155550123", Region::US).as_deref(),
            Some("+14155550123")
        );
        assert_eq!(
            to_e164("(512) 555-0100", Region::US).as_deref(),
            Some("+15125550100")
        );
        assert_eq!(to_e164("+1 123 456 7890", Region::US), None); // no NPA starts with 1
        assert_eq!(
            to_e164("2025550173", Region::US).as_deref(),
            Some("+12025550173")
        );
        assert_eq!(
            to_e164("020 7183 8750", Region::GB).as_deref(),
            Some("+442071838750")
        );
        assert_eq!(
            to_e164("00442071838750", Region::GB).as_deref(),
            Some("+442071838750")
        );
        assert_eq!(to_e164("1001", Region::US), None);
        assert_eq!(normalise("1001", Region::US).as_deref(), Some("1001"));
    }

    #[test]
    fn international_input_keeps_its_own_country_code() {
        // A US tenant's national prefix (1) must not be stripped from another country's
        // number: these were rewritten into other valid numbers by the previous library.
        for n in [
            "+4915123456789",
            "+358181234567",
            "+611300123456",
            "+8613912345678",
        ] {
            assert_eq!(to_e164(n, Region::US).as_deref(), Some(n));
        }
        assert_eq!(
            to_e164("011 49 151 23456789", Region::US).as_deref(),
            Some("+4915123456789")
        );
        assert_eq!(
            to_e164("8 (812) 123-45-67", Region::RU).as_deref(),
            Some("+78121234567")
        );
        assert_eq!(to_e164("+26355863472", Region::US), None); // not a valid number
    }

    #[test]
    fn short_national_input_is_never_a_number() {
        // Niue's numbers have 4 digits: as national input they read as extensions, in
        // international form they are numbers.
        assert_eq!(to_e164("4002", Region::NU), None);
        assert_eq!(to_e164("+6834002", Region::US).as_deref(), Some("+6834002"));
    }

    #[test]
    fn regions_are_the_ones_libphonenumber_knows() {
        assert_eq!(region("gb"), Some(Region::GB));
        assert_eq!(region("US"), Some(Region::US));
        for bad in ["XX", "ZZ", "001", "USA", ""] {
            assert_eq!(region(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn memo_keys_on_region() {
        for _ in 0..2 {
            for region in [Region::GB, Region::US] {
                assert_eq!(
                    to_e164("020 7183 8750", region),
                    parse_e164("020 7183 8750", region)
                );
            }
        }
    }

    #[test]
    fn withheld_values() {
        assert!(is_withheld(Some("anonymous")));
        assert!(is_withheld(Some("Anonymous")));
        assert!(is_withheld(None));
        assert!(!is_withheld(Some("+14155550123")));
    }
}
