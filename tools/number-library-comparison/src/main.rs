//! Which number library should postcall use? Agreement with libphonenumber and speed.
//!
//! Each library is compared with libphonenumber's Python port at the metadata release the
//! library carries (`phonenumber` 0.3.10 has 9.0.33, `rlibphonenumber` 2.2.15 has 9.0.42), on
//! the reference inputs `tools/gen_number_reference.py` makes for that release:
//!
//! ```sh
//! pip install --target /tmp/pn933 phonenumbers==9.0.33
//! mkdir /tmp/ref933 && cp tools/*.py /tmp/ref933/
//! sed -i 's/^METADATA_RELEASE = .*/METADATA_RELEASE = "9.0.33"/' /tmp/ref933/gen_geodata.py
//! (cd /tmp/ref933 && PYTHONPATH=/tmp/pn933 python3 gen_number_reference.py /tmp/ref933/ref.tsv)
//! cargo run --release --manifest-path tools/number-library-comparison/Cargo.toml -- \
//!     /tmp/ref933/ref.tsv tests/data/numbers_reference.tsv
//! ```
//!
//! Compared per input (tenant region + text as a PBX hands it over): the E.164 form of a valid
//! number (or "not valid"), and its region. Speed: parse + validate + format E.164, every
//! input three times, single thread; both libraries are measured in the same run.

use std::time::Instant;

type Outcome = (String, String);

fn rows(path: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).expect("reference table");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split('\t').map(|s| if s == "-" { "" } else { s }.to_owned()).collect())
        .collect()
}

fn phonenumber_03(tenant: &str, input: &str) -> Outcome {
    let Ok(region) = tenant.parse::<phonenumber::country::Id>() else {
        return Outcome::default();
    };
    let Ok(n) = phonenumber::parse(Some(region), input) else {
        return Outcome::default();
    };
    if !phonenumber::is_valid(&n) {
        return Outcome::default();
    }
    let e164 = n.format().mode(phonenumber::Mode::E164).to_string();
    let region = n.country().id().map_or_else(|| "001".to_owned(), |c| format!("{c:?}"));
    (e164, region)
}

fn rlibphonenumber_2(tenant: &str, input: &str) -> Outcome {
    use rlibphonenumber::{PhoneNumber, PhoneNumberFormat, Region};
    let Ok(region) = tenant.parse::<Region>() else {
        return Outcome::default();
    };
    let Ok(n) = PhoneNumber::parse(input, Some(region)) else {
        return Outcome::default();
    };
    if !n.is_valid() {
        return Outcome::default();
    }
    let e164 = n.format_as(PhoneNumberFormat::E164).into_owned();
    let region = n
        .get_region_code()
        .map_or_else(|| "001".to_owned(), |r| r.as_region_str().to_string());
    (e164, region)
}

fn measure(name: &str, path: &str, library: fn(&str, &str) -> Outcome) {
    let rows = rows(path);
    let (mut same_number, mut same_region) = (0usize, 0usize);
    let mut examples = Vec::new();
    for r in &rows {
        let (e164, region) = library(&r[0], &r[1]);
        if e164 == r[2] {
            same_number += 1;
        } else if examples.len() < 8 {
            examples.push(format!("{} {:?}: {e164:?}, libphonenumber {:?}", r[0], r[1], r[2]));
        }
        if e164.is_empty() || region == r[3] {
            same_region += 1;
        }
    }
    let start = Instant::now();
    let mut sink = 0usize;
    for _ in 0..3 {
        for r in &rows {
            sink += library(&r[0], &r[1]).0.len();
        }
    }
    let micros = start.elapsed().as_secs_f64() * 1e6 / (3 * rows.len()) as f64;
    let pct = |n: usize| 100.0 * n as f64 / rows.len() as f64;
    println!(
        "{name}: {} inputs; E.164 and validity agree {same_number} ({:.2} %); region agrees \
         {same_region} ({:.2} %); {micros:.2} µs per input [{sink}]",
        rows.len(),
        pct(same_number),
        pct(same_region)
    );
    for e in examples {
        println!("    {e}");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, reference_933, reference_942] = args.as_slice() else {
        eprintln!("usage: number-library-comparison REFERENCE_9.0.33.tsv REFERENCE_9.0.42.tsv");
        std::process::exit(2);
    };
    measure("phonenumber 0.3.10 (9.0.33)", reference_933, phonenumber_03);
    measure("rlibphonenumber 2.2.15 (9.0.42)", reference_942, rlibphonenumber_2);
}
