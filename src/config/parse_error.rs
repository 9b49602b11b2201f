//! Parse errors that never echo a value. `toml`'s own `Display` prints the offending source
//! line, and serde's messages quote the value that did not fit (`invalid type: string
//! "whsec_…"`): either can put a signing secret, a token or a URL's `sig` into a terminal or a
//! log. These messages name the line, column and key instead, and blank every quoted value.

/// `line L, column C, key a.b: message` for a TOML error in `text`, without any value.
pub fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let Some(span) = e.span() else {
        return without_values(e.message());
    };
    let at = span.start.min(text.len());
    let before = text.get(..at).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let key = key_at(text, line)
        .map(|k| format!(", key {k}"))
        .unwrap_or_default();
    format!(
        "line {line}, column {column}{key}: {}",
        without_values(e.message())
    )
}

/// A JSON error (serde_json's message ends with its own line and column) without values.
pub fn json_message(e: &serde_json::Error) -> String {
    without_values(&e.to_string())
}

/// The dotted key whose value holds line `line` (1-based): the table header above it and the
/// nearest `key =` at or above it. Only characters a TOML key may have are kept; anything else
/// gives no key rather than risk printing a value.
fn key_at(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().take(line).collect();
    let is_key = |k: &str| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-. \"'".contains(c))
    };
    let mut key = None;
    let mut table = None;
    for l in lines.iter().rev() {
        let t = l.trim();
        if t.starts_with('[') {
            let name = t.trim_start_matches('[');
            let name = name.split(']').next().unwrap_or("").trim();
            table = is_key(name).then(|| name.to_owned());
            break;
        }
        if key.is_none() {
            if let Some((k, _)) = t.split_once('=') {
                let k = k.trim();
                if is_key(k) && !t.starts_with('#') {
                    key = Some(k.to_owned());
                }
            }
        }
    }
    match (table, key) {
        (Some(t), Some(k)) => Some(format!("{t}.{k}")),
        (None, Some(k)) => Some(k),
        (Some(t), None) => Some(t),
        (None, None) => None,
    }
}

/// `message` with every quoted value blanked. serde and the TOML parser quote the value they
/// rejected in `"…"` or `` `…` `` before the word "expected"; what follows it describes the
/// schema and stays. Messages about field names (unknown, missing, duplicate) keep them.
pub fn without_values(message: &str) -> String {
    let message = message.trim_end().replace('\n', " ");
    let names_fields = [
        "unknown field",
        "missing field",
        "duplicate field",
        "duplicate key",
    ]
    .iter()
    .any(|p| message.starts_with(p));
    if names_fields {
        return message;
    }
    let (head, tail) = match message.find("expected") {
        Some(i) => message.split_at(i),
        None => (message.as_str(), ""),
    };
    let mut out = String::with_capacity(message.len());
    let mut chars = head.chars();
    while let Some(c) = chars.next() {
        if c == '"' || c == '`' || c == '\'' {
            out.push(c);
            out.push_str("[value]");
            let mut escaped = false;
            for d in chars.by_ref() {
                if d == c && !escaped {
                    break;
                }
                escaped = d == '\\' && !escaped;
            }
            out.push(c);
        } else {
            out.push(c);
        }
    }
    out.push_str(tail);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err<T: serde::de::DeserializeOwned + std::fmt::Debug>(text: &str) -> String {
        toml_message(text, &toml::from_str::<T>(text).unwrap_err())
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        action: Action,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Action {
        retries: Option<u32>,
        secret: Option<String>,
        method: Option<Method>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    enum Method {
        #[serde(rename = "GET")]
        Get,
    }

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn no_value_is_echoed() {
        for (text, key) in [
            // The secret in a value of the wrong type.
            (
                format!("[action]\nretries = \"{SECRET}\"\n"),
                "action.retries",
            ),
            // A syntax error on the secret's own line (unclosed string).
            (format!("[action]\nsecret = \"{SECRET}\n"), "action.secret"),
            // A syntax error on the line after it.
            (
                format!("[action]\nsecret = \"{SECRET}\"\nretries = = 3\n"),
                "action.retries",
            ),
            // An unknown variant carrying the secret.
            (
                format!("[action]\nmethod = \"{SECRET}\"\n"),
                "action.method",
            ),
            // A duplicate key.
            (
                format!("[action]\nsecret = \"{SECRET}\"\nsecret = \"{SECRET}\"\n"),
                "action.secret",
            ),
        ] {
            let m = err::<Doc>(&text);
            assert!(!m.contains("MfKQ9r8"), "{m}");
            assert!(m.contains(&format!("key {key}")), "{m}");
            assert!(m.starts_with("line "), "{m}");
        }
        let m = err::<Doc>("[action]\nretrys = 3\n");
        assert!(m.contains("unknown field `retrys`"), "{m}");
        assert_eq!(
            without_values(r#"invalid type: string "a\"b", expected u32"#),
            r#"invalid type: string "[value]", expected u32"#
        );
        let j = serde_json::from_str::<u32>(&format!("\"{SECRET}\"")).unwrap_err();
        assert!(!json_message(&j).contains("MfKQ9r8"));
    }
}
