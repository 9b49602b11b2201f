//! Rating: a tenant's rate deck, the longest-prefix lookup, and Kazoo's cost formula.
//!
//! **Matching** follows Kazoo's hotornot (`hon_util:sort_rates_by_weight`): every rate whose
//! `prefix` is a prefix of the number's E.164 digits and whose `direction` admits the leg's
//! direction is a candidate; the longest prefix wins, then the lowest `weight` (default 100),
//! then the rate listed first in the deck. A rate with no direction applies both ways.
//!
//! **Cost** follows Kazoo's `kapps_call_util:calculate_call/1,5`, with R = `rate_cost` per
//! minute, I = `rate_increment` (0 means 60), M = `rate_minimum`, S = `rate_surcharge`,
//! N = `rate_nocharge_time` and s = the leg's billable seconds:
//!
//! ```text
//! s = 0 or s ≤ N  →  0
//! s ≤ M           →  S + (M / 60)·R
//! otherwise       →  S + (M / 60)·R + ⌈(s − M) / I⌉ · (I / 60)·R
//! ```
//!
//! Like Kazoo, money is counted in integer units of 1/10 000 (`kz_currency`: dollars → units
//! rounded, costs truncated to whole units). Kazoo evaluates the products in floating point
//! before truncating; this computes the same expression exactly in integers, so a result can
//! only differ where Kazoo's float rounding loses a unit. Defaults are Kazoo's system
//! defaults: 60 s increment, 60 s minimum ("60/60"), no surcharge, no free time.
//!
//! **Lookup structure.** Rates are grouped by prefix in a hash map keyed by (length, digits);
//! a lookup probes only the prefix lengths the deck actually has, longest first, so it costs
//! at most 15 hash probes whatever the deck's size (the same idea as hotornot's
//! `prefix_keys`). `benches/rating.rs` compares it with a linear scan at 100 000 prefixes.

use std::collections::HashMap;

/// Money units per currency unit (Kazoo's `kz_currency` `DOLLAR_TO_UNIT`).
pub const UNITS_PER_CURRENCY: i64 = 10_000;

/// Which way a leg went, for a rate's `direction` filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A carrier called in (rated on the DID).
    Inbound,
    /// The switch called out (rated on the dialled number).
    Outbound,
}

/// One row of a rate deck.
#[derive(Debug, Clone, PartialEq)]
pub struct Rate {
    /// E.164 digits without `+`.
    pub prefix: String,
    /// Cost per minute, in units of 1/10 000.
    pub cost_units: i64,
    /// Billing increment after the minimum, seconds (0 means 60).
    pub increment_secs: u64,
    /// Minimum billed seconds.
    pub minimum_secs: u64,
    /// Connection charge, in units.
    pub surcharge_units: i64,
    /// Calls of at most this many seconds are free.
    pub nocharge_secs: u64,
    /// `rate_name`.
    pub name: Option<String>,
    /// `description`: the band reported as `rateBand`.
    pub description: Option<String>,
    /// Directions the rate applies to; both when `None`.
    pub inbound: bool,
    /// See `inbound`.
    pub outbound: bool,
    /// Tie-break between equal prefixes: lower wins (Kazoo default 100).
    pub weight: i64,
}

impl Rate {
    /// A 60/60 rate with no surcharge for `prefix` at `cost_units` per minute, both directions.
    pub fn new(prefix: impl Into<String>, cost_units: i64) -> Self {
        Self {
            prefix: prefix.into(),
            cost_units,
            increment_secs: 60,
            minimum_secs: 60,
            surcharge_units: 0,
            nocharge_secs: 0,
            name: None,
            description: None,
            inbound: true,
            outbound: true,
            weight: 100,
        }
    }

    fn admits(&self, direction: Direction) -> bool {
        match direction {
            Direction::Inbound => self.inbound,
            Direction::Outbound => self.outbound,
        }
    }

    /// Cost in units of a leg with `secs` billable seconds under this rate (Kazoo's formula).
    pub fn cost_units(&self, secs: u64) -> i64 {
        if secs == 0 || secs <= self.nocharge_secs {
            return 0;
        }
        let r = i128::from(self.cost_units);
        let inc = i128::from(if self.increment_secs == 0 {
            60
        } else {
            self.increment_secs
        });
        let min = i128::from(self.minimum_secs);
        let s = i128::from(secs);
        // Everything in unit-seconds per minute, divided by 60 once at the end (exact).
        let mut per_minute = min * r;
        if s > min {
            let increments = (s - min + inc - 1) / inc;
            per_minute += increments * inc * r;
        }
        let cost = i128::from(self.surcharge_units) + per_minute.div_euclid(60);
        i64::try_from(cost).unwrap_or(i64::MAX)
    }
}

/// Converts a money amount to units, as Kazoo does (rounded).
pub fn to_units(amount: f64) -> Option<i64> {
    let units = (amount * UNITS_PER_CURRENCY as f64).round();
    (units.is_finite() && units.abs() < 9.0e15).then_some(units as i64)
}

/// A rate deck ready for lookups.
#[derive(Debug, Clone, Default)]
pub struct RateDeck {
    rates: Vec<Rate>,
    /// `(prefix length, prefix value)` → indices into `rates`, best first.
    by_prefix: HashMap<(u8, u64), Vec<u32>>,
    /// Bit `n` set when some prefix has `n` digits.
    lengths: u32,
}

/// Longest prefix a deck may hold (E.164 numbers have at most 15 digits).
pub const MAX_PREFIX_DIGITS: usize = 15;

impl RateDeck {
    /// Builds the lookup over `rates`; the order of `rates` breaks remaining ties.
    ///
    /// Rates whose prefix is empty, longer than 15 digits or not all digits are never
    /// matched (the file loader rejects them with their line).
    pub fn new(rates: Vec<Rate>) -> Self {
        let mut by_prefix: HashMap<(u8, u64), Vec<u32>> = HashMap::new();
        let mut lengths = 0u32;
        for (i, r) in rates.iter().enumerate() {
            let (Some(key), Ok(i)) = (prefix_key(&r.prefix), u32::try_from(i)) else {
                continue;
            };
            lengths |= 1 << key.0;
            by_prefix.entry(key).or_default().push(i);
        }
        for list in by_prefix.values_mut() {
            // Stable: equal weights keep deck order.
            list.sort_by_key(|&i| rates[i as usize].weight);
        }
        Self {
            rates,
            by_prefix,
            lengths,
        }
    }

    /// Number of rates.
    pub fn len(&self) -> usize {
        self.rates.len()
    }

    /// True when the deck has no rates.
    pub fn is_empty(&self) -> bool {
        self.rates.is_empty()
    }

    /// The rates, in deck order.
    pub fn rates(&self) -> &[Rate] {
        &self.rates
    }

    /// The rate for `number` (`+E.164` or bare digits) in `direction`.
    pub fn lookup(&self, number: &str, direction: Direction) -> Option<&Rate> {
        let digits = number.strip_prefix('+').unwrap_or(number);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let max = digits.len().min(MAX_PREFIX_DIGITS);
        (1..=max).rev().find_map(|len| {
            if self.lengths & (1 << len) == 0 {
                return None;
            }
            let key = prefix_key(digits.get(..len)?)?;
            self.by_prefix
                .get(&key)?
                .iter()
                .map(|&i| &self.rates[i as usize])
                .find(|r| r.admits(direction))
        })
    }

    /// The same answer as [`RateDeck::lookup`] by scanning every rate (for tests and the
    /// benchmark's baseline).
    pub fn lookup_linear(&self, number: &str, direction: Direction) -> Option<&Rate> {
        let digits = number.strip_prefix('+').unwrap_or(number);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut best: Option<&Rate> = None;
        for r in &self.rates {
            if prefix_key(&r.prefix).is_none()
                || !digits.starts_with(r.prefix.as_str())
                || !r.admits(direction)
            {
                continue;
            }
            let better = match best {
                None => true,
                Some(b) => {
                    (r.prefix.len(), std::cmp::Reverse(r.weight))
                        > (b.prefix.len(), std::cmp::Reverse(b.weight))
                }
            };
            if better {
                best = Some(r);
            }
        }
        best
    }
}

fn prefix_key(prefix: &str) -> Option<(u8, u64)> {
    if prefix.is_empty()
        || prefix.len() > MAX_PREFIX_DIGITS
        || !prefix.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some((u8::try_from(prefix.len()).ok()?, prefix.parse().ok()?))
}

/// The rating of a session.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rating {
    /// Sum of the rated legs' costs, in units.
    pub cost_units: i64,
    /// `rate_name` of the first rated leg's rate.
    pub name: Option<String>,
    /// `description` of the first rated leg's rate.
    pub band: Option<String>,
    /// Legs a rate was found for.
    pub rated_legs: usize,
}

/// Rates each `(number, direction, billable seconds)` leg, in the order given (first answered
/// first). `None` when no leg found a rate.
pub fn rate_legs<'a>(
    deck: &RateDeck,
    legs: impl IntoIterator<Item = (&'a str, Direction, u64)>,
) -> Option<Rating> {
    let mut rating: Option<Rating> = None;
    for (number, direction, secs) in legs {
        let Some(rate) = deck.lookup(number, direction) else {
            continue;
        };
        let r = rating.get_or_insert_with(|| Rating {
            name: rate.name.clone(),
            band: rate.description.clone(),
            ..Rating::default()
        });
        r.cost_units = r.cost_units.saturating_add(rate.cost_units(secs));
        r.rated_legs += 1;
    }
    rating
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(prefix: &str, per_min: f64) -> Rate {
        Rate::new(prefix, to_units(per_min).unwrap())
    }

    #[test]
    fn sixty_sixty_defaults() {
        let r = rate("1", 0.01); // 100 units a minute
        assert_eq!(r.cost_units(0), 0);
        assert_eq!(r.cost_units(1), 100); // the minimum: a whole minute
        assert_eq!(r.cost_units(60), 100);
        assert_eq!(r.cost_units(61), 200);
        assert_eq!(r.cost_units(120), 200);
        assert_eq!(r.cost_units(121), 300);
    }

    #[test]
    fn minimum_and_increment() {
        // 30/6 billing at 0.06 a minute (600 units): 30 s minimum, then 6 s steps of 60 units.
        let r = Rate {
            minimum_secs: 30,
            increment_secs: 6,
            ..rate("44", 0.06)
        };
        assert_eq!(r.cost_units(5), 300);
        assert_eq!(r.cost_units(30), 300);
        assert_eq!(r.cost_units(31), 360);
        assert_eq!(r.cost_units(36), 360);
        assert_eq!(r.cost_units(37), 420);
        // An increment of 0 means 60, as in Kazoo.
        let zero = Rate {
            minimum_secs: 0,
            increment_secs: 0,
            ..rate("44", 0.06)
        };
        assert_eq!(zero.cost_units(61), 1200);
        // No minimum, per-second billing.
        let per_sec = Rate {
            minimum_secs: 0,
            increment_secs: 1,
            ..rate("44", 0.06)
        };
        assert_eq!(per_sec.cost_units(45), 450);
    }

    #[test]
    fn surcharge_and_no_charge_time() {
        let r = Rate {
            surcharge_units: to_units(0.05).unwrap(),
            nocharge_secs: 10,
            ..rate("1", 0.012)
        };
        assert_eq!(
            r.cost_units(10),
            0,
            "free up to and including the no-charge time"
        );
        assert_eq!(r.cost_units(11), 500 + 120);
        assert_eq!(r.cost_units(61), 500 + 240);
    }

    #[test]
    fn fractional_units_truncate_like_kazoo() {
        // 0.0001 a minute for a 6 s minimum: 0.1 unit, truncated to 0.
        let r = Rate {
            minimum_secs: 6,
            increment_secs: 6,
            ..rate("1", 0.0001)
        };
        assert_eq!(r.cost_units(6), 0);
        assert_eq!(r.cost_units(54), 0); // 0.9 unit
        assert_eq!(r.cost_units(55), 1); // billed 60 s: 1 unit
        assert_eq!(r.cost_units(600), 10);
    }

    #[test]
    fn longest_prefix_then_weight_then_deck_order() {
        let deck = RateDeck::new(vec![
            Rate {
                name: Some("US".into()),
                ..rate("1", 0.01)
            },
            Rate {
                name: Some("NJ heavy".into()),
                weight: 50,
                ..rate("1201", 0.02)
            },
            Rate {
                name: Some("NJ light".into()),
                weight: 10,
                ..rate("1201", 0.03)
            },
            Rate {
                name: Some("NJ light too".into()),
                weight: 10,
                ..rate("1201", 0.04)
            },
            Rate {
                name: Some("inbound NJ".into()),
                weight: 1,
                outbound: false,
                ..rate("12012", 0.05)
            },
        ]);
        let name = |n: &str, d: Direction| {
            deck.lookup(n, d)
                .and_then(|r| r.name.as_deref())
                .map(str::to_owned)
        };
        assert_eq!(
            name("+12012001234", Direction::Outbound).as_deref(),
            Some("NJ light")
        );
        assert_eq!(
            name("+12012001234", Direction::Inbound).as_deref(),
            Some("inbound NJ")
        );
        assert_eq!(
            name("+14155550123", Direction::Outbound).as_deref(),
            Some("US")
        );
        assert_eq!(name("+442071838750", Direction::Outbound), None);
        assert_eq!(name("1001x", Direction::Outbound), None);
        for n in ["+12012001234", "+14155550123", "+442071838750", "12019"] {
            for d in [Direction::Inbound, Direction::Outbound] {
                assert_eq!(deck.lookup(n, d), deck.lookup_linear(n, d), "{n} {d:?}");
            }
        }
    }

    proptest::proptest! {
        /// The index answers exactly what a scan of every rate answers.
        #[test]
        fn index_agrees_with_linear_scan(
            rows in proptest::collection::vec(("[1-3]{1,5}", 0i64..3, 0u8..3), 0..40),
            number in "[1-3]{1,8}",
        ) {
            let deck = RateDeck::new(
                rows.iter()
                    .map(|(p, w, d)| Rate {
                        weight: *w,
                        inbound: *d != 1,
                        outbound: *d != 2,
                        ..rate(p, 0.01)
                    })
                    .collect(),
            );
            for d in [Direction::Inbound, Direction::Outbound] {
                let n = format!("+{number}");
                proptest::prop_assert_eq!(deck.lookup(&n, d), deck.lookup_linear(&n, d));
            }
        }
    }

    #[test]
    fn session_cost_sums_legs_and_names_the_first() {
        let deck = RateDeck::new(vec![
            Rate {
                name: Some("UK".into()),
                description: Some("international".into()),
                ..rate("44", 0.02)
            },
            Rate {
                name: Some("US".into()),
                inbound: false,
                ..rate("1", 0.01)
            },
        ]);
        let r = rate_legs(
            &deck,
            [
                ("+442071838750", Direction::Outbound, 61),
                ("+12025550173", Direction::Inbound, 30),
                ("+14155550123", Direction::Outbound, 30),
            ],
        )
        .unwrap();
        assert_eq!(r.rated_legs, 2);
        assert_eq!(r.cost_units, 400 + 100);
        assert_eq!(r.name.as_deref(), Some("UK"));
        assert_eq!(r.band.as_deref(), Some("international"));
        assert_eq!(
            rate_legs(&deck, [("+12025550173", Direction::Inbound, 30)]),
            None
        );
    }
}
