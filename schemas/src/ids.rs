//! Parsed identifiers: DICOM UIDs (PS3.5 §9.1) and the patient and accession
//! identifiers a PACS and an EHR send.
//!
//! Each type parses, it does not merely validate: once a value exists it is
//! known to be well formed, and it can only be read back as `&str`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Why an identifier was refused. The message names the rule that failed and
/// never echoes the value (an identifier may be PHI).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Nothing left after trimming padding.
    #[error("{kind} is empty")]
    Empty {
        /// Which identifier, e.g. "StudyInstanceUID".
        kind: &'static str,
    },
    /// Longer than the value representation allows.
    #[error("{kind} is longer than {max} characters")]
    TooLong {
        /// Which identifier.
        kind: &'static str,
        /// The limit in characters.
        max: usize,
    },
    /// A character the value representation does not allow.
    #[error("{kind} contains a character that is not allowed ({rule})")]
    BadCharacter {
        /// Which identifier.
        kind: &'static str,
        /// The rule, e.g. "digits and '.' only".
        rule: &'static str,
    },
    /// A UID component that is empty or has a leading zero (PS3.5 §9.1).
    #[error("{kind} has an empty component or a component with a leading zero (PS3.5 §9.1)")]
    BadComponent {
        /// Which identifier.
        kind: &'static str,
    },
}

/// Trims the padding DICOM allows at the end of a value: a trailing NUL for
/// UI (PS3.5 §6.2, "UI"), trailing spaces for LO/SH; leading spaces of LO/SH
/// are not significant either.
fn trim_padding(raw: &str) -> &str {
    raw.trim_end_matches(['\0', ' ']).trim_start_matches(' ')
}

/// Parses a UID: at most 64 characters, digits and '.', each component
/// non-empty and without a leading zero unless it is "0" (PS3.5 §9.1).
fn parse_uid(kind: &'static str, raw: &str) -> Result<String, IdError> {
    let s = trim_padding(raw);
    if s.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if s.len() > 64 {
        return Err(IdError::TooLong { kind, max: 64 });
    }
    if !s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(IdError::BadCharacter {
            kind,
            rule: "digits and '.' only",
        });
    }
    if s.split('.')
        .any(|c| c.is_empty() || (c.len() > 1 && c.starts_with('0')))
    {
        return Err(IdError::BadComponent { kind });
    }
    Ok(s.to_owned())
}

/// Parses a short text identifier: LO (64 characters) or SH (16 characters),
/// no backslash (the DICOM value separator) and no control characters
/// (PS3.5 §6.2).
fn parse_text_id(kind: &'static str, raw: &str, max: usize) -> Result<String, IdError> {
    let s = trim_padding(raw);
    if s.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if s.chars().count() > max {
        return Err(IdError::TooLong { kind, max });
    }
    if s.chars().any(|c| c == '\\' || c.is_control()) {
        return Err(IdError::BadCharacter {
            kind,
            rule: "no backslash or control characters",
        });
    }
    Ok(s.to_owned())
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $parse:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            #[doc = concat!("Parses a ", $kind, ", trimming DICOM padding.\n\n# Errors\n\n[`IdError`] naming the rule the value breaks.")]
            pub fn parse(raw: &str) -> Result<Self, IdError> {
                let parse: fn(&'static str, &str) -> Result<String, IdError> = $parse;
                parse($kind, raw).map(Self)
            }

            /// The identifier as text, without padding.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

identifier!(
    /// Study Instance UID (0020,000D), PS3.5 §9.1.
    StudyInstanceUid, "StudyInstanceUID", parse_uid
);
identifier!(
    /// Series Instance UID (0020,000E), PS3.5 §9.1.
    SeriesInstanceUid, "SeriesInstanceUID", parse_uid
);
identifier!(
    /// SOP Instance UID (0008,0018), PS3.5 §9.1.
    SopInstanceUid, "SOPInstanceUID", parse_uid
);
identifier!(
    /// Transfer Syntax UID (0002,0010), PS3.5 §10 and Annex A.
    TransferSyntaxUid, "TransferSyntaxUID", parse_uid
);
identifier!(
    /// Patient ID (0010,0020), value representation LO: at most 64 characters.
    PatientId, "PatientID", |kind, raw| parse_text_id(kind, raw, 64)
);
identifier!(
    /// Accession Number (0008,0050), value representation SH: at most 16 characters.
    AccessionNumber, "AccessionNumber", |kind, raw| parse_text_id(kind, raw, 16)
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_padding_is_trimmed() {
        let uid = StudyInstanceUid::parse("1.2.840.10008.1.2\0").unwrap();
        assert_eq!(uid.as_str(), "1.2.840.10008.1.2");
        assert_eq!(SopInstanceUid::parse("1.2.3 ").unwrap().as_str(), "1.2.3");
    }

    #[test]
    fn uid_rules_of_ps3_5_section_9_1() {
        assert!(StudyInstanceUid::parse("1.0.2").is_ok());
        assert_eq!(
            StudyInstanceUid::parse("1.02.3"),
            Err(IdError::BadComponent {
                kind: "StudyInstanceUID"
            })
        );
        assert!(matches!(
            StudyInstanceUid::parse("1..2"),
            Err(IdError::BadComponent { .. })
        ));
        assert!(matches!(
            StudyInstanceUid::parse("1.2.a"),
            Err(IdError::BadCharacter { .. })
        ));
        assert!(matches!(
            StudyInstanceUid::parse(""),
            Err(IdError::Empty { .. })
        ));
        let long = format!("1.{}", "2".repeat(63));
        assert!(matches!(
            StudyInstanceUid::parse(&long),
            Err(IdError::TooLong { max: 64, .. })
        ));
        let max = format!("1.{}", "2".repeat(62));
        assert_eq!(StudyInstanceUid::parse(&max).unwrap().as_str().len(), 64);
    }

    #[test]
    fn text_ids_follow_their_value_representation() {
        assert_eq!(PatientId::parse(" PAT-001  ").unwrap().as_str(), "PAT-001");
        assert!(matches!(
            AccessionNumber::parse("12345678901234567"),
            Err(IdError::TooLong { max: 16, .. })
        ));
        assert!(AccessionNumber::parse("1234567890123456").is_ok());
        assert!(matches!(
            PatientId::parse("a\\b"),
            Err(IdError::BadCharacter { .. })
        ));
    }

    #[test]
    fn errors_never_echo_the_value() {
        let err = PatientId::parse("SECRET\\NAME").unwrap_err().to_string();
        assert!(!err.contains("SECRET"), "{err}");
    }

    #[test]
    fn deserialising_parses() {
        let uid: SeriesInstanceUid = serde_json::from_str("\"1.2.3\\u0000\"").unwrap();
        assert_eq!(uid.as_str(), "1.2.3");
        assert!(serde_json::from_str::<SeriesInstanceUid>("\"x\"").is_err());
    }
}
