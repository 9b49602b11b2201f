//! One line a person can read about a call: direction, caller → answering (or last rang)
//! party (on outgoing calls the calling party → the dialled number), outcome, ring and talk
//! seconds. Used by `postcall explain` and the demo's receiver,
//! which sees the CDR as JSON or as form/query pairs, so the line is built from field lookups
//! by CDR name (`cliNum`, `tags.voicemail`).

use serde_json::Value;

use crate::cdr::{Cdr, Direction};

/// The summary of a typed CDR.
pub fn of_cdr(cdr: &Cdr) -> String {
    of_json(&serde_json::to_value(cdr).unwrap_or(Value::Null))
}

/// The summary of a CDR as JSON (the payload's `cdr` object).
pub fn of_json(cdr: &Value) -> String {
    line(&|name: &str| {
        let v = name.split('.').try_fold(cdr, |v, k| v.get(k))?;
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    })
}

/// The summary of a CDR sent as form data or a query (`cdr[cliNum]=…`, `cdr[tags][voicemail]=1`).
pub fn of_pairs(pairs: &[(String, String)]) -> String {
    line(&|name: &str| {
        let key = format!("cdr[{}]", name.replace('.', "]["));
        pairs
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
    })
}

/// `Incoming +14155550123 → Alice (201), answered, ring 5 s, talk 120 s`.
fn line(get: &dyn Fn(&str) -> Option<String>) -> String {
    let flag = |name: &str| get(name).is_some_and(|v| v == "1");
    let dir = get("dir")
        .and_then(|c| c.parse::<u8>().ok())
        .and_then(|c| Direction::try_from(c).ok())
        .map_or("Unknown", Direction::name);
    let party = |num: &str, name: &str| match (get(name), get(num)) {
        (Some(n), Some(x)) if n != x => Some(format!("{n} ({x})")),
        (Some(n), _) => Some(n),
        (None, x) => x,
    };
    let caller = party("cliNum", "cliName").unwrap_or_else(|| "withheld".into());
    let role = |r: &str| {
        party(&format!("{r}UsrNum"), &format!("{r}UsrName"))
            .or_else(|| party(&format!("{r}DevNum"), &format!("{r}DevName")))
    };
    let answered = flag("ans");
    let (caller, callee) = if dir == Direction::Outgoing.name() {
        // `cliNum` is the dialled number and the answering device is the calling one.
        let from = role("ans").or_else(|| get("ddiNum"));
        (from.unwrap_or_else(|| "unknown".into()), caller)
    } else {
        let to = if answered { role("ans") } else { role("lRng") }.or_else(|| get("ddiNum"));
        (caller, to.unwrap_or_else(|| "nobody".into()))
    };
    let outcome = if answered {
        if flag("short") {
            "answered (short)"
        } else {
            "answered"
        }
    } else if flag("lostinPark") {
        "lost in park"
    } else if get("tags.voicemail").is_some() {
        "voicemail"
    } else if flag("lost") {
        "lost"
    } else if flag("aban") {
        "abandoned"
    } else {
        "not answered"
    };
    let secs = |name: &str| get(name).unwrap_or_else(|| "?".into());
    format!(
        "{dir} {caller} → {callee}, {outcome}, ring {} s, talk {} s",
        secs("ring"),
        secs("talk")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The product page's example CDR (an unanswered external incoming call, lost after ten
    /// seconds of ringing) reads the same from JSON and from form pairs.
    #[test]
    fn json_and_form_read_the_same() {
        let cdr = json!({
            "dur": 10, "ring": 10, "talk": 0, "lost": 1, "ans": 0, "dir": 2, "type": 2,
            "cliNum": "+447000000000", "ddiNum": "+441610000000",
            "lRngDevNum": "user_1", "lRngDevName": "(T42S) Test User",
            "lRngUsrNum": "302", "lRngUsrName": "Test User", "tags": {"Support": "step1"}
        });
        let want = "Incoming +447000000000 → Test User (302), lost, ring 10 s, talk 0 s";
        assert_eq!(of_json(&cdr), want);
        let payload = json!({"triggerId": "t", "cdr": cdr});
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(
            crate::delivery::payload::encode(
                "https://x.example/",
                crate::delivery::Method::Post,
                crate::delivery::Format::Form,
                &serde_json::value::to_raw_value(&payload).unwrap(),
            )
            .unwrap()
            .body
            .as_slice(),
        )
        .into_owned()
        .collect();
        assert_eq!(of_pairs(&pairs), want);
        let answered = json!({"ring": 4, "talk": 61, "ans": 1, "dir": 1, "cliNum": "201",
            "cliName": "Alice", "ansUsrNum": "202", "ansUsrName": "Bob"});
        assert_eq!(
            of_json(&answered),
            "Internal Alice (201) → Bob (202), answered, ring 4 s, talk 61 s"
        );
        assert_eq!(
            of_json(
                &json!({"dir": 2, "ring": 20, "talk": 0, "ans": 0, "tags": {"voicemail": "1"}, "ddiNum": "+15550100"})
            ),
            "Incoming withheld → +15550100, voicemail, ring 20 s, talk 0 s"
        );
    }
}
