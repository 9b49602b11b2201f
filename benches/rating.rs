//! Rate-deck lookups per second at 100 000 prefixes: the prefix-length hash index that
//! `RateDeck::lookup` uses, against a linear scan of every rate, in one run.
//!
//! `cargo bench --bench rating` (a plain `main`, no timing assertions anywhere).

use std::hint::black_box;
use std::time::{Duration, Instant};

use postcall::enrich::{Direction, Rate, RateDeck};
use rand_xoshiro::rand_core::{Rng as _, SeedableRng};
use rand_xoshiro::SplitMix64;

/// A seeded generator, so every run rates the same deck.
struct Mix(SplitMix64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + (self.next() % 10) as u8))
            .collect()
    }
}

fn deck(n: usize, rng: &mut Mix) -> RateDeck {
    let country_codes = ["1", "44", "49", "33", "61", "91", "86", "52", "55", "81"];
    let rates = (0..n)
        .map(|i| {
            let cc = country_codes[i % country_codes.len()];
            let extra = 1 + (rng.next() % 6) as usize;
            let mut r = Rate::new(format!("{cc}{}", rng.digits(extra)), 10 + (i as i64 % 500));
            r.weight = (rng.next() % 3) as i64;
            if i % 7 == 0 {
                r.outbound = false;
            }
            r
        })
        .collect();
    RateDeck::new(rates)
}

fn numbers(deck: &RateDeck, n: usize, rng: &mut Mix) -> Vec<String> {
    (0..n)
        .map(|_| {
            // Mostly numbers under a real prefix, some that match only a country code or nothing.
            let r = &deck.rates()[(rng.next() % deck.len() as u64) as usize];
            let body = match rng.next() % 10 {
                0 => format!("7{}", rng.digits(10)),
                1 => format!("{}{}", &r.prefix[..1], rng.digits(10)),
                _ => format!("{}{}", r.prefix, rng.digits(11 - r.prefix.len().min(10))),
            };
            format!("+{body}")
        })
        .collect()
}

fn measure(name: &str, numbers: &[String], f: impl Fn(&str) -> Option<i64>) -> f64 {
    let started = Instant::now();
    let mut done = 0usize;
    let mut checksum = 0i64;
    while started.elapsed() < Duration::from_millis(1500) {
        for n in numbers {
            checksum = checksum.wrapping_add(f(black_box(n)).unwrap_or(-1));
        }
        done += numbers.len();
    }
    let per_sec = done as f64 / started.elapsed().as_secs_f64();
    println!("{name:<32} {per_sec:>14.0} lookups/s  ({done} lookups, checksum {checksum})");
    per_sec
}

fn main() {
    let mut rng = Mix(SplitMix64::seed_from_u64(6));
    let prefixes = 100_000;
    let deck = deck(prefixes, &mut rng);
    let sample = numbers(&deck, 10_000, &mut rng);
    let mut found = 0;
    for n in &sample[..500] {
        for d in [Direction::Inbound, Direction::Outbound] {
            let (a, b) = (deck.lookup(n, d), deck.lookup_linear(n, d));
            assert_eq!(a, b, "index and scan disagree on {n}");
            found += usize::from(a.is_some());
        }
    }
    println!("rate deck: {prefixes} prefixes; index and linear scan agree on 1000 lookups ({found} rated)");
    let cost = |r: Option<&Rate>| r.map(|r| r.cost_units(95));
    let indexed = measure("prefix-length hash index", &sample, |n| {
        cost(deck.lookup(n, Direction::Outbound))
    });
    let linear = measure("linear scan", &sample[..200], |n| {
        cost(deck.lookup_linear(n, Direction::Outbound))
    });
    println!("index / linear: {:.0}x", indexed / linear);

    // Location: the embedded geocoding table is parsed on first use.
    let started = Instant::now();
    let first = postcall::enrich::locate("+12012001234");
    println!(
        "location: first lookup (parses the embedded table) {:?} -> {:?}",
        started.elapsed(),
        first.place
    );
    let located: Vec<String> = [
        "+12012001234",
        "+442071838750",
        "+4930123456",
        "+61212345678",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    measure("locate() (parse + geocode)", &located, |n| {
        postcall::enrich::locate(n).place.map(|p| p.len() as i64)
    });
}
