//! The canonical serialisation hashed for audit records and anchors.
//!
//! A record's hash is the lowercase hex SHA-256 of the UTF-8 bytes of this JSON array, written
//! with no whitespace at all:
//!
//! ```text
//! ["itaku.audit_record.v1", instance_id, seq, at, actor_id, on_behalf_of, event, from_state,
//!  to_state, step, comment, request_id, details, prev_hash]
//! ```
//!
//! An anchor's hash is the same over:
//!
//! ```text
//! ["itaku.audit_anchor.v1", seq, at, [[instance_id, seq, hash], …], prev_hash]
//! ```
//!
//! with the heads sorted by instance id (byte order of the UTF-8 string).
//!
//! Element by element:
//! - strings are JSON strings: `"` → `\"`, `\` → `\\`, U+0008 → `\b`, U+0009 → `\t`,
//!   U+000A → `\n`, U+000C → `\f`, U+000D → `\r`, any other code point below U+0020 →
//!   `\u00xx` (lowercase hex); every other character, non-ASCII and U+007F included, is its
//!   own UTF-8 bytes (no `\u` escapes);
//! - an absent optional field is `null`;
//! - `seq` is a decimal JSON integer (no sign, no leading zeros, no fraction);
//! - `at` is the string `YYYY-MM-DDTHH:MM:SS.ffffffZ`: UTC, exactly six fractional digits
//!   (values are truncated to microseconds before they are stored, see `db_time`);
//! - `details` is canonical JSON: object members sorted by key (UTF-8 byte order, which is code
//!   point order), no whitespace, strings as above, `true` / `false` / `null`, integers in
//!   decimal, and any other number as serde_json 1 writes an `f64` (shortest round-trip form:
//!   `0.1`, `1.0`, `1e21`);
//! - hashes (`prev_hash`, a head's `hash`) are 64 lowercase hex digits; the first record of an
//!   instance and the first anchor have `prev_hash` = 64 `0`s.
//!
//! The leading domain tag keeps a record's hash and an anchor's hash from ever being confused.
//! Nothing here depends on how a database prints timestamps or JSON: `verify` re-serialises the
//! values it reads.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::services::db_time::rfc3339_micros;

const RECORD_TAG: &str = "itaku.audit_record.v1";
const ANCHOR_TAG: &str = "itaku.audit_anchor.v1";

/// Every hashed field of an audit record.
pub(super) struct RecordFields<'a> {
    pub instance_id: &'a str,
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor_id: &'a str,
    pub on_behalf_of: Option<&'a str>,
    pub event: &'a str,
    pub from_state: Option<&'a str>,
    pub to_state: &'a str,
    pub step: Option<&'a str>,
    pub comment: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub details: &'a Value,
    pub prev_hash: &'a str,
}

/// One instance chain head committed by an anchor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct AnchoredHead {
    pub instance_id: String,
    pub seq: i64,
    pub hash: String,
}

/// The canonical bytes of a record (see the module documentation).
pub(super) fn record_bytes(f: &RecordFields<'_>) -> String {
    let mut w = ArrayWriter::new();
    w.str(RECORD_TAG)
        .str(f.instance_id)
        .int(f.seq)
        .str(&rfc3339_micros(f.at))
        .str(f.actor_id)
        .opt(f.on_behalf_of)
        .str(f.event)
        .opt(f.from_state)
        .str(f.to_state)
        .opt(f.step)
        .opt(f.comment)
        .opt(f.request_id)
        .json(f.details)
        .str(f.prev_hash);
    w.finish()
}

/// The hash of a record.
pub(super) fn record_hash(f: &RecordFields<'_>) -> String {
    sha256_hex(&record_bytes(f))
}

/// The canonical JSON text of anchored heads, as stored in `audit_anchors.heads`.
pub(super) fn heads_json(heads: &[AnchoredHead]) -> String {
    let mut list = ArrayWriter::new();
    for head in heads {
        let mut triple = ArrayWriter::new();
        triple.str(&head.instance_id).int(head.seq).str(&head.hash);
        list.raw(&triple.finish());
    }
    list.finish()
}

/// The hash of an anchor.
pub(super) fn anchor_hash(
    seq: i64,
    at: DateTime<Utc>,
    heads: &[AnchoredHead],
    prev_hash: &str,
) -> String {
    let mut w = ArrayWriter::new();
    w.str(ANCHOR_TAG)
        .int(seq)
        .str(&rfc3339_micros(at))
        .raw(&heads_json(heads))
        .str(prev_hash);
    sha256_hex(&w.finish())
}

/// Reads `audit_anchors.heads` back; the error says what is malformed.
pub(super) fn parse_heads(text: &str) -> Result<Vec<AnchoredHead>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let Value::Array(items) = value else {
        return Err("heads is not a JSON array".to_owned());
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| match item.as_array().map(Vec::as_slice) {
            Some([Value::String(instance_id), seq, Value::String(hash)]) => seq
                .as_i64()
                .map(|seq| AnchoredHead {
                    instance_id: instance_id.clone(),
                    seq,
                    hash: hash.clone(),
                })
                .ok_or_else(|| format!("head {index}: seq is not an integer")),
            _ => Err(format!("head {index} is not [instance_id, seq, hash]")),
        })
        .collect()
}

/// Canonical JSON text of any value (keys sorted, no whitespace).
pub(super) fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    push_json(&mut out, value);
    out
}

/// Lowercase hex SHA-256 of a string's UTF-8 bytes.
fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Writes the elements of one JSON array, inserting the commas.
struct ArrayWriter {
    out: String,
    empty: bool,
}

impl ArrayWriter {
    fn new() -> Self {
        Self {
            out: String::from("["),
            empty: true,
        }
    }

    fn comma(&mut self) {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
    }

    fn str(&mut self, s: &str) -> &mut Self {
        self.comma();
        push_str(&mut self.out, s);
        self
    }

    fn opt(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            Some(s) => self.str(s),
            None => self.raw("null"),
        }
    }

    fn int(&mut self, i: i64) -> &mut Self {
        self.raw(&i.to_string())
    }

    fn json(&mut self, value: &Value) -> &mut Self {
        self.comma();
        push_json(&mut self.out, value);
        self
    }

    /// An element that is already canonical text.
    fn raw(&mut self, text: &str) -> &mut Self {
        self.comma();
        self.out.push_str(text);
        self
    }

    fn finish(mut self) -> String {
        self.out.push(']');
        self.out
    }
}

fn push_json(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => push_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json(out, item);
            }
            out.push(']');
        }
        Value::Object(members) => {
            // Sorted here, not trusted to the map type: serde_json's `preserve_order` feature
            // (enabled by any crate in the build) would otherwise keep insertion order.
            let mut keys: Vec<&String> = members.keys().collect();
            keys.sort_unstable();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_str(out, key);
                out.push(':');
                if let Some(member) = members.get(key) {
                    push_json(out, member);
                }
            }
            out.push('}');
        }
    }
}

fn push_str(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{0c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if u32::from(c) < 0x20 => {
                let code = u32::from(c) as usize;
                out.push_str("\\u00");
                out.push(char::from(HEX[code >> 4]));
                out.push(char::from(HEX[code & 0xf]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn at() -> Result<DateTime<Utc>, &'static str> {
        Utc.timestamp_opt(1_795_000_000, 123_456_789)
            .single()
            .ok_or("valid timestamp")
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth_and_writes_no_whitespace() {
        let value = json!({"b": 1, "a": {"z": [true, null, 1.5], "y": "x"}, "A": -2});
        assert_eq!(
            canonical_json(&value),
            r#"{"A":-2,"a":{"y":"x","z":[true,null,1.5]},"b":1}"#
        );
    }

    #[test]
    fn strings_escape_only_quotes_backslashes_and_control_characters() {
        let value = json!("\"\\\u{08}\t\n\u{0c}\r\u{01}\u{1f}\u{7f}委託é/");
        assert_eq!(
            canonical_json(&value),
            "\"\\\"\\\\\\b\\t\\n\\f\\r\\u0001\\u001f\u{7f}委託é/\""
        );
    }

    #[test]
    fn canonical_json_reads_back_to_the_same_value() -> Result<(), serde_json::Error> {
        let value = json!({"n": [0.1, 1.0, 1e21, -0.0, 18446744073709551615u64, -9], "s": "\u{0}"});
        let text = canonical_json(&value);
        let back: Value = serde_json::from_str(&text)?;
        assert_eq!(canonical_json(&back), text);
        Ok(())
    }

    #[test]
    fn a_known_record_has_a_fixed_serialisation_and_hash() -> Result<(), &'static str> {
        let details = json!({"unmet": [], "approvals": 2});
        let fields = RecordFields {
            instance_id: "0196f7a0-0000-7000-8000-000000000001",
            seq: 2,
            at: at()?,
            actor_id: "user-1",
            on_behalf_of: None,
            event: "approve",
            from_state: Some("review"),
            to_state: "approved",
            step: Some("manager"),
            comment: Some("承認します"),
            request_id: None,
            details: &details,
            prev_hash: "ab",
        };
        assert_eq!(
            record_bytes(&fields),
            concat!(
                r#"["itaku.audit_record.v1","0196f7a0-0000-7000-8000-000000000001",2,"#,
                r#""2026-11-18T11:06:40.123456Z","user-1",null,"approve","review","approved","#,
                r#""manager","承認します",null,{"approvals":2,"unmet":[]},"ab"]"#
            )
        );
        // Freezes the format: changing the serialisation invalidates every stored chain.
        assert_eq!(record_hash(&fields), KNOWN_RECORD_HASH);
        Ok(())
    }

    const KNOWN_RECORD_HASH: &str =
        "b627840c3a48060cfe2f7a0488a3ba2fb80cd755d2781da2f8cde20884cb91be";

    #[test]
    fn heads_round_trip_through_their_stored_text() -> Result<(), String> {
        let heads = vec![
            AnchoredHead {
                instance_id: "a".to_owned(),
                seq: 3,
                hash: "h1".to_owned(),
            },
            AnchoredHead {
                instance_id: "b".to_owned(),
                seq: 1,
                hash: "h2".to_owned(),
            },
        ];
        let text = heads_json(&heads);
        assert_eq!(text, r#"[["a",3,"h1"],["b",1,"h2"]]"#);
        assert_eq!(parse_heads(&text)?, heads);
        assert!(parse_heads(r#"[["a","3","h1"]]"#).is_err());
        assert!(parse_heads(r#"{"a":1}"#).is_err());
        Ok(())
    }
}
