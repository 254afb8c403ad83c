//! JSON documents as body inspection reads them: [`Doc`] borrows its unescaped strings and keys
//! from the body and keeps an object as one key-sorted vector, where serde_json's `Value` owns a
//! copy of every string and builds a B-tree per object (on sampled API bodies that building
//! cost more than learning from the document). [`Json`] is what the schema and the leaf scan
//! read, so they take either.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

/// A parsed JSON document whose strings point into the text it was parsed from where they can.
#[derive(Clone, Debug, PartialEq)]
pub enum Doc<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Doc<'a>>),
    /// Sorted by key, each key once with the last value it had: what a serde_json `Map` holds
    /// after parsing the same object.
    Object(Vec<(Cow<'a, str>, Doc<'a>)>),
}

impl<'a> Doc<'a> {
    /// Parses one JSON text (whitespace around it allowed), accepting and refusing exactly what
    /// `serde_json::from_slice::<Value>` does.
    pub fn parse(text: &'a [u8]) -> serde_json::Result<Doc<'a>> {
        serde_json::from_slice(text)
    }
}

/// A JSON value seen by its shape.
pub enum View<'x, J: Json + 'x> {
    Null,
    Bool,
    Number(&'x Number),
    String(&'x str),
    Array(&'x [J]),
    Object { len: usize, entries: J::Entries<'x> },
}

/// A JSON value the schema can learn from and the leaf scan can walk.
pub trait Json: Sized {
    /// An object's entries in key order.
    type Entries<'x>: Iterator<Item = (&'x str, &'x Self)>
    where
        Self: 'x;

    fn view(&self) -> View<'_, Self>;
}

type ValueEntries<'x> =
    std::iter::Map<serde_json::map::Iter<'x>, fn((&'x String, &'x Value)) -> (&'x str, &'x Value)>;

impl Json for Value {
    type Entries<'x> = ValueEntries<'x>;

    fn view(&self) -> View<'_, Self> {
        match self {
            Value::Null => View::Null,
            Value::Bool(_) => View::Bool,
            Value::Number(n) => View::Number(n),
            Value::String(s) => View::String(s),
            Value::Array(items) => View::Array(items),
            Value::Object(map) => View::Object {
                len: map.len(),
                entries: map.iter().map(|(k, v)| (k.as_str(), v)),
            },
        }
    }
}

type DocEntries<'x, 'a> = std::iter::Map<
    std::slice::Iter<'x, (Cow<'a, str>, Doc<'a>)>,
    fn(&'x (Cow<'a, str>, Doc<'a>)) -> (&'x str, &'x Doc<'a>),
>;

impl<'a> Json for Doc<'a> {
    type Entries<'x>
        = DocEntries<'x, 'a>
    where
        Self: 'x;

    fn view(&self) -> View<'_, Self> {
        match self {
            Doc::Null => View::Null,
            Doc::Bool(_) => View::Bool,
            Doc::Number(n) => View::Number(n),
            Doc::String(s) => View::String(s),
            Doc::Array(items) => View::Array(items),
            Doc::Object(entries) => View::Object {
                len: entries.len(),
                entries: entries.iter().map(|(k, v)| (&**k, v)),
            },
        }
    }
}

impl<'de> Deserialize<'de> for Doc<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DocVisitor)
    }
}

struct DocVisitor;

impl<'de> Visitor<'de> for DocVisitor {
    type Value = Doc<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Doc<'de>, E> {
        Ok(Doc::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Doc<'de>, E> {
        Ok(Doc::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Doc<'de>, E> {
        Ok(Doc::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Doc<'de>, E> {
        // As serde_json's `Value`: a float with no JSON number is null.
        Ok(Number::from_f64(v).map_or(Doc::Null, Doc::Number))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Doc<'de>, E> {
        Ok(Doc::String(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Doc<'de>, E> {
        Ok(Doc::String(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Doc<'de>, E> {
        Ok(Doc::String(Cow::Owned(v)))
    }

    fn visit_none<E>(self) -> Result<Doc<'de>, E> {
        Ok(Doc::Null)
    }

    fn visit_unit<E>(self) -> Result<Doc<'de>, E> {
        Ok(Doc::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Doc<'de>, D::Error> {
        Doc::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Doc<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Doc::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc<'de>, A::Error> {
        let mut entries = Vec::new();
        while let Some(Key(key)) = map.next_key()? {
            entries.push((key, map.next_value()?));
        }
        // A stable sort keeps repeated keys in document order; the first of each run then
        // takes the last one's value, as a map insert would.
        entries.sort_by(|a: &(Cow<'de, str>, Doc<'de>), b| a.0.cmp(&b.0));
        entries.dedup_by(|later, kept| {
            let repeated = later.0 == kept.0;
            if repeated {
                std::mem::swap(&mut later.1, &mut kept.1);
            }
            repeated
        });
        Ok(Doc::Object(entries))
    }
}

/// An object key, borrowed when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `doc` as the `Value` it stands for.
    fn to_value(doc: &Doc<'_>) -> Value {
        match doc {
            Doc::Null => Value::Null,
            Doc::Bool(b) => Value::Bool(*b),
            Doc::Number(n) => Value::Number(n.clone()),
            Doc::String(s) => Value::String(s.to_string()),
            Doc::Array(items) => Value::Array(items.iter().map(to_value).collect()),
            Doc::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.to_string(), to_value(v)))
                    .collect(),
            ),
        }
    }

    /// Every key and scalar kind in the order a walk over [`Json::view`] meets them.
    fn walk<J: Json>(j: &J, out: &mut Vec<String>) {
        match j.view() {
            View::Null => out.push("null".into()),
            View::Bool => out.push("bool".into()),
            View::Number(n) => out.push(n.to_string()),
            View::String(s) => out.push(format!("{s:?}")),
            View::Array(items) => {
                out.push(format!("[{}", items.len()));
                items.iter().for_each(|i| walk(i, out));
            }
            View::Object { len, entries } => {
                out.push(format!("{{{len}"));
                for (k, v) in entries {
                    out.push(format!("{k:?}:"));
                    walk(v, out);
                }
            }
        }
    }

    fn same_as_value(text: &[u8]) {
        let value = serde_json::from_slice::<Value>(text);
        let doc = Doc::parse(text);
        match (&value, &doc) {
            (Ok(v), Ok(d)) => {
                assert_eq!(&to_value(d), v, "{}", String::from_utf8_lossy(text));
                let (mut from_value, mut from_doc) = (Vec::new(), Vec::new());
                walk(v, &mut from_value);
                walk(d, &mut from_doc);
                assert_eq!(from_doc, from_value);
            }
            (Err(_), Err(_)) => {}
            _ => panic!(
                "{}: Value {:?}, Doc {:?}",
                String::from_utf8_lossy(text),
                value.is_ok(),
                doc.is_ok()
            ),
        }
    }

    #[test]
    fn parses_what_value_parses_and_refuses_what_it_refuses() {
        for text in [
            &br#"{"b": 1, "a": [true, null, -3, 2.5e3, "x\ny"], "c": {}}"#[..],
            br#" {"k": 1, "k": 2, "j": 0, "k": 3} "#,
            br#"{"\u0041": "\u00e9", "A": 1}"#,
            br#"[18446744073709551615, -9223372036854775808, 1e400]"#,
            br#"{"a": 1} trailing"#,
            br#"{"a": 1,}"#,
            b"",
            b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]",
            b"\"unterminated",
            b"nul",
        ] {
            same_as_value(text);
        }
        let deep = [b'['; 200];
        same_as_value(&deep);
    }

    #[test]
    fn unescaped_strings_and_keys_are_borrowed() {
        let text = br#"{"plain": "value", "esc\"aped": "a\tb"}"#;
        let Ok(Doc::Object(entries)) = Doc::parse(text) else {
            panic!("not an object");
        };
        let plain = entries.iter().find(|(k, _)| k == "plain").unwrap();
        assert!(matches!(plain.0, Cow::Borrowed(_)));
        assert!(matches!(plain.1, Doc::String(Cow::Borrowed("value"))));
        let escaped = entries.iter().find(|(k, _)| k == "esc\"aped").unwrap();
        assert!(matches!(escaped.0, Cow::Owned(_)));
        assert!(matches!(&escaped.1, Doc::String(Cow::Owned(s)) if s == "a\tb"));
    }

    #[test]
    fn a_repeated_key_keeps_its_last_value() {
        let doc = Doc::parse(br#"{"k": 1, "a": 0, "k": 2, "k": {"x": 3}}"#).unwrap();
        let Doc::Object(entries) = doc else {
            panic!("not an object");
        };
        let keys: Vec<&str> = entries.iter().map(|(k, _)| &**k).collect();
        assert_eq!(keys, ["a", "k"]);
        assert!(matches!(&entries[1].1, Doc::Object(inner) if inner.len() == 1));
    }

    fn json_text() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            (-1e6f64..1e6).prop_map(|f| format!("{f:e}")),
            "[a-c\\\\\"é]{0,4}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        ];
        leaf.prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec(("[a-d]{1,2}", inner), 0..6).prop_map(|v| {
                    let fields: Vec<String> = v
                        .into_iter()
                        .map(|(k, x)| format!("{}:{x}", serde_json::to_string(&k).unwrap()))
                        .collect();
                    format!("{{{}}}", fields.join(","))
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_document_reads_as_its_value(text in json_text(), cut in any::<prop::sample::Index>()) {
            same_as_value(text.as_bytes());
            // And any prefix: truncated bodies are common.
            let bytes = text.as_bytes();
            same_as_value(&bytes[..cut.index(bytes.len() + 1)]);
        }

        #[test]
        fn any_bytes_parse_or_fail_as_value_does(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            same_as_value(&bytes);
        }
    }
}
