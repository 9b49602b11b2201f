//! The simulator's seeded generator and the id shapes Kazoo uses.
//!
//! Everything the simulator randomises goes through [`Rng`], so one seed always gives the same
//! frames, on every platform (integer arithmetic only, no floating point). The stream is
//! SplitMix64 (from `rand_xoshiro`, a fixed published algorithm, not a "some good generator"
//! type whose output may change between versions): the fixtures and snapshots are defined by it.

use rand_xoshiro::rand_core::{Rng as _, SeedableRng};
use rand_xoshiro::SplitMix64;

use crate::source::fnv1a;

/// SplitMix64 plus the draws the simulator needs (bounded, weighted, ids).
#[derive(Debug, Clone)]
pub(crate) struct Rng(SplitMix64);

/// SplitMix64's state increment: `stream × GOLDEN` is where stream `stream` of the seed-0
/// sequence starts, which [`Rng::derive`] uses to spread stream numbers over 64 bits.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

impl Rng {
    /// A generator for `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self(SplitMix64::seed_from_u64(seed))
    }

    /// An independent stream `stream` of `seed` (e.g. one per generated call).
    pub(crate) fn derive(seed: u64, stream: u64) -> Self {
        let spread = SplitMix64::seed_from_u64(stream.wrapping_mul(GOLDEN)).next_u64();
        let mut r = Self::new(seed ^ spread);
        r.next_u64();
        r
    }

    /// A generator seeded from text (stable across runs).
    pub(crate) fn from_text(text: &str) -> Self {
        Self::new(fnv1a(text.as_bytes()))
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform index into a collection of `len` items.
    pub(crate) fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// Uniform in `lo..hi` (`lo` when the range is empty).
    pub(crate) fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below((hi - lo) as u64) as i64
    }

    /// True with probability `percent`/100.
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One item of a non-empty slice.
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }

    /// Index drawn with the given weights (all zero: index 0).
    pub(crate) fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
        let mut x = self.below(total);
        for (i, w) in weights.iter().enumerate() {
            let w = u64::from(*w);
            if x < w {
                return i;
            }
            x -= w;
        }
        0
    }

    /// `n` lower-case hex digits.
    pub(crate) fn hex(&mut self, n: usize) -> String {
        self.chars(n, b"0123456789abcdef")
    }

    /// `n` decimal digits (the first one non-zero).
    pub(crate) fn digits(&mut self, n: usize) -> String {
        let mut s = self.chars(n, b"0123456789");
        if s.starts_with('0') {
            s.replace_range(0..1, "7");
        }
        s
    }

    /// `n` characters from `[a-z0-9]`.
    pub(crate) fn base36(&mut self, n: usize) -> String {
        self.chars(n, b"abcdefghijklmnopqrstuvwxyz0123456789")
    }

    /// `n` characters from `[A-Za-z0-9]`.
    pub(crate) fn alnum(&mut self, n: usize) -> String {
        self.chars(
            n,
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        )
    }

    /// A random (version 4) UUID in its hyphenated form, as FreeSWITCH uses for call ids.
    pub(crate) fn uuid(&mut self) -> String {
        let h = self.hex(32);
        let variant = ["8", "9", "a", "b"][self.index(4)];
        format!(
            "{}-{}-4{}-{}{}-{}",
            &h[0..8],
            &h[8..12],
            &h[13..16],
            variant,
            &h[17..20],
            &h[20..32]
        )
    }

    fn chars(&mut self, n: usize, alphabet: &[u8]) -> String {
        (0..n)
            .map(|_| char::from(alphabet[self.index(alphabet.len())]))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_shaped() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        assert_eq!(a.next_u64(), b.next_u64());
        let u = a.uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(a.hex(32).bytes().all(|c| c.is_ascii_hexdigit()));
        assert!((0..1000).all(|_| a.range(5, 9) >= 5 && a.range(5, 9) < 9));
        assert_ne!(Rng::derive(1, 0).next_u64(), Rng::derive(1, 1).next_u64());
    }

    /// The stream the fixtures are defined by is Vigna's SplitMix64: the first values for a seed,
    /// as his reference `splitmix64.c` prints them (the same vector `rand_xoshiro` tests with).
    #[test]
    fn stream_is_reference_splitmix64() {
        let mut r = Rng::new(1_477_776_061_723_855_037);
        let first = [
            1_985_237_415_132_408_290,
            2_979_275_885_539_914_483,
            13_511_426_838_097_143_398,
            8_488_337_342_461_049_707,
        ];
        assert_eq!(first.map(|_| r.next_u64()), first);
    }
}
