//! The JSON objects of a JWS (its header and claims) as the checks read
//! them: member names and string values borrowed from the decoded bytes.
//!
//! A token is parsed once per verification, and building a map of owned
//! strings for its dozen members was a tenth of what ingest spent per
//! complaint. Duplicate member names are refused (RFC 7515 §4 lets a parser
//! take the last one, which lets a forger show two readers two values).

use std::borrow::Cow;
use std::fmt;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// One member's value: a string (borrowed when it has no escapes), or any
/// other JSON value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Member<'a> {
    Str(Cow<'a, str>),
    Other(Value),
}

impl Member<'_> {
    /// The string, if the value is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Member::Str(s) => Some(s),
            Member::Other(_) => None,
        }
    }

    /// True for JSON `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Member::Other(Value::Null))
    }
}

/// Written as the JSON value (as `serde_json::Value` writes it), for errors.
impl fmt::Display for Member<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Member::Str(s) => fmt::Display::fmt(&Value::String(s.to_string()), f),
            Member::Other(v) => fmt::Display::fmt(v, f),
        }
    }
}

/// A JSON object's members in order, names unique.
#[derive(Debug, Default)]
pub(crate) struct Members<'a>(Vec<(Cow<'a, str>, Member<'a>)>);

impl<'a> Members<'a> {
    /// Parses `bytes` as one JSON object; `what` names it in the error.
    pub fn parse(bytes: &'a [u8], what: &str) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("{what}: {e}"))
    }

    /// The member `name`, if present.
    pub fn get(&self, name: &str) -> Option<&Member<'a>> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Takes the member `name` out (moved, not copied).
    pub fn take(&mut self, name: &str) -> Option<Member<'a>> {
        let at = self.0.iter().position(|(n, _)| n == name)?;
        Some(self.0.swap_remove(at).1)
    }

    /// True if the object has a member `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> Visitor<'de> for Object {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Members<'de>, A::Error> {
                let mut members: Vec<(Cow<'de, str>, Member<'de>)> = Vec::with_capacity(16);
                while let Some(Name(name)) = a.next_key()? {
                    if members.iter().any(|(n, _)| *n == name) {
                        let msg = format!("duplicate member {:?}", name.as_ref());
                        return Err(de::Error::custom(msg));
                    }
                    members.push((name, a.next_value()?));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(Object)
    }
}

/// A member name, borrowed when it has no escapes.
struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrOrValue).and_then(|m| match m {
            Member::Str(s) => Ok(Name(s)),
            Member::Other(v) => Err(de::Error::custom(format!(
                "member name {v} is not a string"
            ))),
        })
    }
}

impl<'de> Deserialize<'de> for Member<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrOrValue)
    }
}

/// Strings as [`Member::Str`]; everything else as `serde_json::Value`
/// would read it.
struct StrOrValue;

impl<'de> Visitor<'de> for StrOrValue {
    type Value = Member<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Member<'de>, E> {
        Ok(Member::Str(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Member<'de>, E> {
        Ok(Member::Str(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E>(self, s: String) -> Result<Member<'de>, E> {
        Ok(Member::Str(Cow::Owned(s)))
    }
    fn visit_bool<E>(self, b: bool) -> Result<Member<'de>, E> {
        Ok(Member::Other(Value::Bool(b)))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Member<'de>, E> {
        Ok(Member::Other(Value::from(n)))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Member<'de>, E> {
        Ok(Member::Other(Value::from(n)))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Member<'de>, E> {
        Ok(Member::Other(Value::from(n)))
    }
    fn visit_unit<E>(self) -> Result<Member<'de>, E> {
        Ok(Member::Other(Value::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, a: A) -> Result<Member<'de>, A::Error> {
        Value::deserialize(SeqAccessDeserializer::new(a)).map(Member::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<Member<'de>, A::Error> {
        Value::deserialize(MapAccessDeserializer::new(a)).map(Member::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_read_as_serde_json_values_do() {
        let json =
            br#"{"s":"plain","e":"tab\there","n":12,"f":1.5,"neg":-3,"big":18446744073709551615,
            "z":null,"b":true,"a":[1,"x",{"k":null}],"o":{"p":[]}}"#;
        let ours = Members::parse(json, "t").unwrap();
        let theirs: serde_json::Map<String, Value> = serde_json::from_slice(json).unwrap();
        assert_eq!(ours.0.len(), theirs.len());
        for (name, value) in &theirs {
            let member = ours.get(name).unwrap();
            assert_eq!(member.to_string(), value.to_string(), "{name}");
            assert_eq!(member.as_str(), value.as_str(), "{name}");
            assert_eq!(member.is_null(), value.is_null(), "{name}");
        }
        assert!(matches!(
            ours.get("s"),
            Some(Member::Str(Cow::Borrowed("plain")))
        ));
    }

    #[test]
    fn duplicates_and_non_objects_are_refused() {
        let dup = Members::parse(br#"{"iss":"a","x":1,"iss":"b"}"#, "claims").unwrap_err();
        assert!(dup.starts_with("claims: duplicate member \"iss\""), "{dup}");
        let escaped = Members::parse(br#"{"iss":1,"i\u0073s":2}"#, "claims").unwrap_err();
        assert!(escaped.contains("duplicate member"), "{escaped}");
        for not_object in [&b"[1]"[..], b"\"x\"", b"{", b"{} {}", b""] {
            assert!(Members::parse(not_object, "header").is_err());
        }
    }

    #[test]
    fn take_moves_a_member_out() {
        let mut m = Members::parse(br#"{"a":"1","b":"2"}"#, "t").unwrap();
        assert_eq!(m.take("a").unwrap().as_str(), Some("1"));
        assert!(!m.contains("a") && m.contains("b"));
        assert!(m.take("a").is_none());
    }
}
