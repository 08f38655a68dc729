//! A JSON value that borrows its text from the message it was read from. The ingest reads
//! every message once and keeps nothing of it but the validated readings, so copying each
//! name and string into a `serde_json::Value` (and each object into a sorted map) was work
//! for nothing: about a third of the time spent parsing a message (docs/benchmarks.md).

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;
use std::borrow::Cow;
use std::fmt;

/// A JSON value; strings are borrowed unless they held escapes.
#[derive(Debug, Clone, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Object<'a>),
}

/// An object's members in the order sent. A repeated name's last value counts, as with
/// `serde_json::Value`, so a message means the same to every reader.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Object<'a>(Vec<(Cow<'a, str>, Json<'a>)>);

impl<'a> Object<'a> {
    pub fn get(&self, name: &str) -> Option<&Json<'a>> {
        self.0
            .iter()
            .rev()
            .find(|(member, _)| member == name)
            .map(|(_, value)| value)
    }

    /// Takes out the value of `name` (every member of that name goes).
    pub fn remove(&mut self, name: &str) -> Option<Json<'a>> {
        let position = self.0.iter().rposition(|(member, _)| member == name)?;
        let (_, value) = self.0.remove(position);
        self.0.retain(|(member, _)| member != name);
        Some(value)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

impl Json<'_> {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(text) => Some(text),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Number(number) => number.as_f64(),
            _ => None,
        }
    }

    pub fn get(&self, name: &str) -> Option<&Json<'_>> {
        match self {
            Json::Object(object) => object.get(name),
            _ => None,
        }
    }

    /// The value as `serde_json` holds it: what a refusal records and quotes.
    pub fn to_value(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => Value::Number(n.clone()),
            Json::String(s) => Value::String(s.to_string()),
            Json::Array(items) => Value::Array(items.iter().map(Json::to_value).collect()),
            Json::Object(Object(members)) => Value::Object(
                members
                    .iter()
                    .map(|(name, value)| (name.to_string(), value.to_value()))
                    .collect(),
            ),
        }
    }
}

/// A `serde_json::Value` seen as a [`Json`], borrowing its strings: records built in memory
/// (an import's rows) are validated as the ingest validates a message.
impl<'a> From<&'a serde_json::Value> for Json<'a> {
    fn from(value: &'a serde_json::Value) -> Self {
        use serde_json::Value;
        match value {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => Json::Number(n.clone()),
            Value::String(s) => Json::String(Cow::Borrowed(s)),
            Value::Array(items) => Json::Array(items.iter().map(Json::from).collect()),
            Value::Object(members) => Json::Object(Object(
                members
                    .iter()
                    .map(|(name, value)| (Cow::Borrowed(name.as_str()), Json::from(value)))
                    .collect(),
            )),
        }
    }
}

/// The JSON text, as `serde_json::Value` writes it.
impl fmt::Display for Json<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_value().fmt(f)
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

/// Most members a preallocation takes on a length hint's word.
const MAX_PREALLOCATED: usize = 64;

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Json<'de>, D::Error> {
        Json::deserialize(deserializer)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Json<'de>, E> {
        Ok(Json::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Json<'de>, E> {
        Ok(Json::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Json<'de>, E> {
        // As serde_json's own value does: a number that is not finite becomes null.
        Ok(Number::from_f64(value).map_or(Json::Null, Json::Number))
    }

    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Borrowed(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(value.to_owned())))
    }

    fn visit_string<E>(self, value: String) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(value)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_PREALLOCATED));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0).min(MAX_PREALLOCATED));
        // A name is read as a value is, so it is borrowed too (`Cow`'s own `Deserialize`
        // always copies); JSON's names are strings.
        while let Some(name) = map.next_key()? {
            let Json::String(name) = name else {
                return Err(de::Error::custom(
                    "an object member's name must be a string",
                ));
            };
            members.push((name, map.next_value()?));
        }
        Ok(Json::Object(Object(members)))
    }
}

#[cfg(test)]
mod tests {
    use super::Json;
    use proptest::prelude::*;
    use std::borrow::Cow;

    #[test]
    fn strings_and_names_without_escapes_are_borrowed() {
        let text = r#"{"type":"glucose","note":"a \"quoted\" word"}"#;
        let value: Json<'_> = serde_json::from_str(text).expect("valid JSON");
        let Json::Object(object) = &value else {
            panic!("an object")
        };
        assert!(matches!(
            object.get("type"),
            Some(Json::String(Cow::Borrowed("glucose")))
        ));
        assert!(
            matches!(object.get("note"), Some(Json::String(Cow::Owned(s))) if s == "a \"quoted\" word")
        );
    }

    #[test]
    fn a_repeated_name_means_its_last_value_and_goes_as_a_whole() {
        let text = r#"{"value": 1, "unit": "mg/dL", "value": 2}"#;
        let Json::Object(mut object) = serde_json::from_str(text).expect("valid JSON") else {
            panic!("an object")
        };
        assert_eq!(object.get("value").and_then(Json::as_f64), Some(2.0));
        assert_eq!(object.remove("value").and_then(|v| v.as_f64()), Some(2.0));
        assert!(!object.contains_key("value"));
        assert!(object.contains_key("unit"));
    }

    /// JSON texts with every kind of value, repeated names, escapes and deep nesting.
    fn json_text() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("false".to_owned()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| f.to_string()),
            Just("1e400".to_owned()),
            Just("-0.0".to_owned()),
            "[a-z\\\\\"\u{0}é😀]{0,6}".prop_map(|s| serde_json::Value::String(s).to_string()),
            Just(r#""\u00e9\n\ud83d\ude00""#.to_owned()),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5)
                    .prop_map(|items| format!("[{}]", items.join(","))),
                prop::collection::vec(
                    (prop::sample::select(vec!["a", "b", "c", "é"]), inner),
                    0..5
                )
                .prop_map(|members| {
                    let members: Vec<String> = members
                        .iter()
                        .map(|(name, value)| format!("{:?}:{value}", name))
                        .collect();
                    format!("{{{}}}", members.join(","))
                }),
            ]
        })
    }

    proptest! {
        /// Whatever serde_json makes of a text, this makes the same: the same value, or an
        /// error where it errs.
        #[test]
        fn reads_every_text_as_serde_json_does(text in json_text()) {
            let ours = serde_json::from_str::<Json<'_>>(&text).map(|v| v.to_value());
            let theirs = serde_json::from_str::<serde_json::Value>(&text);
            match (ours, theirs) {
                (Ok(ours), Ok(theirs)) => {
                    prop_assert_eq!(&ours, &theirs);
                    prop_assert_eq!(ours.to_string(), theirs.to_string());
                }
                (Err(_), Err(_)) => {}
                (ours, theirs) => prop_assert!(false, "{text}: ours {ours:?}, serde_json {theirs:?}"),
            }
        }
    }
}
