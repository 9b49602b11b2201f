//! The seed's retry rules as pure functions: what an attempt's outcome means, and when the
//! next attempt is due.
//!
//! Success is any 2xx. Connect errors, timeouts, 408, 429 and 5xx other than 501 are retried;
//! every other status (3xx — redirects are never followed —, 4xx, 501) is final. A trigger
//! with `retries = r` gets `1 + r` attempts; the wait before retry `n` (1-based) is `n × unit`,
//! `unit` being 2 s (tests shorten it).

use std::time::Duration;

/// The outcome of one attempt, as far as retrying cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A response with this status.
    Status(u16),
    /// No connection or the connection broke.
    ConnectError,
    /// No complete response within the attempt timeout.
    Timeout,
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Delivered.
    Success,
    /// Try again if attempts remain.
    Retry,
    /// Give up now (dead letter).
    Final,
}

/// Classifies an attempt's outcome.
pub fn classify(outcome: Outcome) -> Verdict {
    match outcome {
        Outcome::Status(s) if (200..300).contains(&s) => Verdict::Success,
        Outcome::Status(408 | 429) => Verdict::Retry,
        Outcome::Status(501) => Verdict::Final,
        Outcome::Status(s) if (500..600).contains(&s) => Verdict::Retry,
        Outcome::Status(_) => Verdict::Final,
        Outcome::ConnectError | Outcome::Timeout => Verdict::Retry,
    }
}

/// The delay before the next attempt after `attempts_made` attempts failed with a retryable
/// outcome, or `None` when the `1 + retries` attempts are used up.
pub fn next_delay(attempts_made: u32, retries: u32, unit: Duration) -> Option<Duration> {
    (attempts_made <= retries && attempts_made > 0).then(|| unit * attempts_made)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_table() {
        use Outcome::*;
        use Verdict::*;
        let table = [
            (Status(200), Success),
            (Status(201), Success),
            (Status(202), Success),
            (Status(204), Success),
            (Status(299), Success),
            (Status(301), Final),
            (Status(302), Final),
            (Status(304), Final),
            (Status(400), Final),
            (Status(401), Final),
            (Status(403), Final),
            (Status(404), Final),
            (Status(408), Retry),
            (Status(410), Final),
            (Status(422), Final),
            (Status(429), Retry),
            (Status(500), Retry),
            (Status(501), Final),
            (Status(502), Retry),
            (Status(503), Retry),
            (Status(504), Retry),
            (Status(599), Retry),
            (Status(100), Final),
            (ConnectError, Retry),
            (Timeout, Retry),
        ];
        for (o, v) in table {
            assert_eq!(classify(o), v, "{o:?}");
        }
    }

    #[test]
    fn schedule_is_n_times_the_unit_for_retries_attempts() {
        let unit = Duration::from_secs(2);
        assert_eq!(next_delay(1, 0, unit), None, "retries 0: one attempt");
        assert_eq!(next_delay(1, 1, unit), Some(Duration::from_secs(2)));
        assert_eq!(next_delay(2, 1, unit), None);
        let waits: Vec<_> = (1..=11).map_while(|n| next_delay(n, 10, unit)).collect();
        assert_eq!(waits.len(), 10);
        assert_eq!(waits[9], Duration::from_secs(20));
        assert_eq!(waits.iter().sum::<Duration>(), Duration::from_secs(110));
    }
}
