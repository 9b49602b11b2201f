//! A minimal JSON text writer with a fixed key order.
//!
//! Frames are written straight into one `String` in the order the code lists the keys, so the
//! committed fixtures are byte-stable whatever `serde_json` features other crates enable, and a
//! 100 000-call mix renders without building intermediate `Value` trees.

/// Appends compact JSON to a buffer.
pub(crate) struct Json {
    buf: String,
    comma: bool,
}

impl Json {
    /// An empty writer with room for `cap` bytes.
    pub(crate) fn with_capacity(cap: usize) -> Self {
        Self {
            buf: String::with_capacity(cap),
            comma: false,
        }
    }

    /// Opens the top-level object.
    pub(crate) fn begin(&mut self) {
        self.buf.push('{');
        self.comma = false;
    }

    /// Closes the innermost object.
    pub(crate) fn end(&mut self) {
        self.buf.push('}');
        self.comma = true;
    }

    /// The finished text.
    pub(crate) fn finish(self) -> String {
        self.buf
    }

    fn key(&mut self, k: &str) {
        if self.comma {
            self.buf.push(',');
        }
        escape_into(&mut self.buf, k);
        self.buf.push(':');
        self.comma = true;
    }

    /// `"k":"v"`.
    pub(crate) fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        escape_into(&mut self.buf, v);
    }

    /// `"k":"v"` when `v` is set.
    pub(crate) fn opt(&mut self, k: &str, v: Option<&str>) {
        if let Some(v) = v {
            self.str(k, v);
        }
    }

    /// `"k":n`.
    pub(crate) fn int(&mut self, k: &str, v: i64) {
        self.key(k);
        self.buf.push_str(&v.to_string());
    }

    /// `"k":true|false`.
    pub(crate) fn bool(&mut self, k: &str, v: bool) {
        self.key(k);
        self.buf.push_str(if v { "true" } else { "false" });
    }

    /// `"k":{` — close it with [`end`](Self::end).
    pub(crate) fn object(&mut self, k: &str) {
        self.key(k);
        self.buf.push('{');
        self.comma = false;
    }
}

/// Writes `s` as a JSON string literal (quotes included), escaping like `serde_json`.
fn escape_into(buf: &mut String, s: &str) {
    buf.push('"');
    for c in s.chars() {
        match c {
            '"' => buf.push_str("\\\""),
            '\\' => buf.push_str("\\\\"),
            '\n' => buf.push_str("\\n"),
            '\r' => buf.push_str("\\r"),
            '\t' => buf.push_str("\\t"),
            '\u{8}' => buf.push_str("\\b"),
            '\u{c}' => buf.push_str("\\f"),
            c if u32::from(c) < 0x20 => buf.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => buf.push(c),
        }
    }
    buf.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_serde_json() {
        let mut j = Json::with_capacity(64);
        j.begin();
        j.str("a", "x\"y\\\r\n\u{1}é");
        j.int("n", -3);
        j.object("o");
        j.end();
        j.object("p");
        j.bool("t", true);
        j.end();
        j.end();
        let text = j.finish();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["a"], "x\"y\\\r\n\u{1}é");
        assert_eq!(
            text,
            r#"{"a":"x\"y\\\r\n\u0001é","n":-3,"o":{},"p":{"t":true}}"#
        );
        let a = serde_json::to_string(&v["a"]).unwrap();
        assert!(text.starts_with(&format!("{{\"a\":{a},")));
    }
}
