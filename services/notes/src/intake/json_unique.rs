//! Duplicate property names in a JSON document, found before it is read.
//!
//! RFC 8259 §4: "When the names within an object are not unique, the
//! behavior of software that receives such an object is unpredictable."
//! `serde_json::Value` keeps the last of two `subject`s while another reader
//! may keep the first, so one FHIR resource could name one patient to us and
//! another to the EHR. A FHIR resource never needs two properties of one name
//! (a repeating element is one JSON array, FHIR R4 §2.6.2), so such a body is
//! refused instead of read one way.

use std::collections::HashSet;
use std::fmt;

use serde::Deserializer;
use serde::de::{MapAccess, SeqAccess, Visitor};

/// The name and path of the first duplicate property of `json`, as
/// `property "data" appears twice in one object at content[0].attachment`,
/// or `None` when every object's names are
/// unique. JSON that does not parse is `None` too: the caller's parser
/// reports it. Memory: one set of names per open object; depth is bounded by
/// serde_json's recursion limit (128).
pub(crate) fn first_duplicate(json: &str) -> Option<String> {
    let mut de = serde_json::Deserializer::from_str(json);
    match serde_path_to_error::deserialize::<_, Unique>(&mut de) {
        Ok(Unique) => None,
        Err(e) => {
            let inner = e.inner().to_string();
            let name = inner.strip_prefix(DUPLICATE)?;
            let name = name.rsplit_once(" at line ").map_or(name, |(n, _)| n);
            let at = match e.path().to_string() {
                root if root == "." => "the top level".to_owned(),
                path => path,
            };
            Some(format!(
                "property {name} appears twice in one object at {at}"
            ))
        }
    }
}

/// The prefix of the error `Unique` raises, so that it is told apart from a
/// syntax error.
const DUPLICATE: &str = "duplicate property ";

/// Walks any JSON value, failing on the first object that repeats a name.
#[derive(Clone, Copy)]
struct Unique;

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Unique)
    }
}

impl<'de> Visitor<'de> for Unique {
    type Value = Unique;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_str<E>(self, _: &str) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_unit<E>(self) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
        while seq.next_element::<Unique>()?.is_some() {}
        Ok(Unique)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
        let mut names = HashSet::new();
        while let Some(name) = map.next_key::<String>()? {
            if !names.insert(name.clone()) {
                return Err(serde::de::Error::custom(format!(
                    "{DUPLICATE}{}",
                    shown(&name)
                )));
            }
            map.next_value::<Unique>()?;
        }
        Ok(Unique)
    }
}

/// A property name as the error shows it: quoted when it has the form of a
/// FHIR element name (letters, digits, `_`, at most 64), else not echoed,
/// since a name could carry anything a sender put there.
fn shown(name: &str) -> String {
    let element_like = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if element_like {
        format!("{name:?}")
    } else {
        "(a name that is not an element name)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::first_duplicate;

    #[test]
    fn finds_the_first_repeated_name_with_its_path() {
        assert_eq!(first_duplicate(r#"{"a": 1, "b": [1, {"c": 2}]}"#), None);
        assert_eq!(
            first_duplicate(r#"{"subject": {"reference": "Patient/a"}, "subject": {}}"#),
            Some(r#"property "subject" appears twice in one object at the top level"#.to_owned())
        );
        assert_eq!(
            first_duplicate(r#"{"content": [{"attachment": {"data": "", "data": ""}}]}"#),
            Some(
                r#"property "data" appears twice in one object at content[0].attachment"#
                    .to_owned()
            )
        );
        // The same name in two objects is not a duplicate.
        assert_eq!(first_duplicate(r#"[{"a": 1}, {"a": 2}]"#), None);
        // Escapes are compared after decoding (RFC 8259 §8.3).
        assert_eq!(
            first_duplicate(r#"{"id": 1, "\u0069d": 2}"#),
            Some(r#"property "id" appears twice in one object at the top level"#.to_owned())
        );
        assert_eq!(
            first_duplicate(r#"{"Jane Doe": 1, "Jane Doe": 2}"#),
            Some(
                "property (a name that is not an element name) appears twice in one object \
                 at the top level"
                    .to_owned()
            )
        );
        // Not JSON: left to the parser that reports it.
        assert_eq!(first_duplicate(r#"{"a": "#), None);
    }
}
