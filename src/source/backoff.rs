//! Reconnect delays: capped exponential backoff with equal jitter. Pure: the caller supplies
//! the random input, so tests and replays are deterministic.

use std::time::Duration;

use rand_xoshiro::rand_core::{Rng as _, SeedableRng};
use rand_xoshiro::SplitMix64;

/// Backoff policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay scale of the first retry.
    pub initial: Duration,
    /// Largest delay.
    pub max: Duration,
}

impl Default for Backoff {
    /// 250 ms doubling up to 60 s, as Monster UI's Blackhole client does.
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (0 = first retry after a failure): the capped
    /// exponential value `min(max, initial × 2^attempt)`, half of it fixed and half uniformly
    /// jittered by `random` (any `u64`), so a fleet that lost the PBX together does not
    /// reconnect in lock-step and no delay is ever below half the nominal one.
    pub fn delay(&self, attempt: u32, random: u64) -> Duration {
        let cap = u64::try_from(self.max.as_micros()).unwrap_or(u64::MAX);
        let base = u64::try_from(self.initial.as_micros()).unwrap_or(u64::MAX);
        let nominal = base
            .checked_shl(attempt.min(63))
            .filter(|v| v >> attempt.min(63) == base)
            .unwrap_or(u64::MAX)
            .min(cap);
        let half = nominal / 2;
        let jitter = if nominal - half == 0 {
            0
        } else {
            random % (nominal - half + 1)
        };
        Duration::from_micros(half + jitter)
    }
}

/// A small non-cryptographic generator for jitter (`rand_xoshiro`'s SplitMix64), seeded by the
/// caller.
#[derive(Debug, Clone)]
pub struct Jitter(SplitMix64);

impl Jitter {
    /// A generator from a seed (the shell seeds it from the clock and process id).
    pub fn new(seed: u64) -> Self {
        Self(SplitMix64::seed_from_u64(seed))
    }

    /// A generator seeded from the clock and the process id, so that processes restarted
    /// together do not retry in step.
    pub fn from_clock() -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self::new(now ^ u64::from(std::process::id()).rotate_left(32))
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn grows_then_caps() {
        let b = Backoff::default();
        assert_eq!(b.delay(0, 0), Duration::from_millis(125));
        assert_eq!(
            b.delay(0, u64::MAX - (u64::MAX % 125_001)),
            Duration::from_millis(125)
        );
        assert_eq!(b.delay(3, 0), Duration::from_millis(1_000));
        assert_eq!(b.delay(20, 0), Duration::from_secs(30));
        assert_eq!(b.delay(200, 0), Duration::from_secs(30));
    }

    proptest! {
        #[test]
        fn within_half_and_full_nominal(attempt in 0u32..300, r in any::<u64>(), init_ms in 1u64..5_000, max_ms in 1u64..600_000) {
            let b = Backoff { initial: Duration::from_millis(init_ms), max: Duration::from_millis(max_ms) };
            let d = b.delay(attempt, r);
            let nominal = Duration::from_millis(init_ms.saturating_mul(1u64 << attempt.min(40)).min(max_ms));
            prop_assert!(d <= nominal);
            prop_assert!(d >= nominal / 2 - Duration::from_micros(1));
        }
    }
}
