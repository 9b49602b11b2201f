//! Telephone numbers: E.164 normalisation with a default region, and withheld caller ids.

use std::cell::RefCell;

use foldhash::HashMap;
use phonenumber::{country, Mode};

/// Distinct numbers [`to_e164`] remembers per thread before it starts over.
const MEMO_CAPACITY: usize = 4096;

/// `raw → (region, E.164 form)`.
type Memo = HashMap<Box<str>, (country::Id, Option<Box<str>>)>;

thread_local! {
    /// Recent [`to_e164`] results. Parsing and validating with `phonenumber` costs tens of µs
    /// (regex look-ups against the region's metadata), and the same numbers recur constantly
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

/// A number as the CDR carries it: E.164 when it is a valid number in `region`'s reading,
/// otherwise the value as given (an extension stays `1001`).
pub fn normalise(raw: &str, region: country::Id) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    Some(to_e164(raw, region).unwrap_or_else(|| raw.to_owned()))
}

/// E.164 form of a valid number, else `None`.
pub fn to_e164(raw: &str, region: country::Id) -> Option<String> {
    let digits = raw.bytes().filter(u8::is_ascii_digit).count();
    // Extensions and short codes are never rewritten into numbers.
    if digits < 7 {
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
fn parse_e164(raw: &str, region: country::Id) -> Option<String> {
    let parsed = phonenumber::parse(Some(region), raw).ok()?;
    phonenumber::is_valid(&parsed).then(|| parsed.format().mode(Mode::E164).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_with_region() {
        assert_eq!(
            to_e164("+14155550123", country::Id::US).as_deref(),
            Some("+14155550123")
        );
        assert_eq!(
            to_e164("(512) 555-0100", country::Id::US).as_deref(),
            Some("+15125550100")
        );
        assert_eq!(to_e164("+1 123 456 7890", country::Id::US), None); // no NPA starts with 1
        assert_eq!(
            to_e164("2025550173", country::Id::US).as_deref(),
            Some("+12025550173")
        );
        assert_eq!(
            to_e164("020 7183 8750", country::Id::GB).as_deref(),
            Some("+442071838750")
        );
        assert_eq!(
            to_e164("00442071838750", country::Id::GB).as_deref(),
            Some("+442071838750")
        );
        assert_eq!(to_e164("1001", country::Id::US), None);
        assert_eq!(normalise("1001", country::Id::US).as_deref(), Some("1001"));
    }

    #[test]
    fn memo_keys_on_region() {
        for _ in 0..2 {
            for region in [country::Id::GB, country::Id::US] {
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
