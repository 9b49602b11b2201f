//! Telephone numbers: E.164 normalisation with a default region, and withheld caller ids.

use phonenumber::{country, Mode};

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
    fn withheld_values() {
        assert!(is_withheld(Some("anonymous")));
        assert!(is_withheld(Some("Anonymous")));
        assert!(is_withheld(None));
        assert!(!is_withheld(Some("+14155550123")));
    }
}
