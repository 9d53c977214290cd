//! The applicability gate: does an image's DICOM header put it inside the
//! package's intended use (`[intended_use]` in the manifest)? Modality, body
//! part, view and photometric interpretation are compared case-insensitively
//! with the manifest's lists (an empty list does not restrict); the patient's
//! age in completed years, from Patient's Age (0010,1010) or else from
//! Patient's Birth Date (0010,0030) and Study Date (0008,0020), against
//! `age_years`, where the manifest's `out_of_range_age` decides between a
//! trust discount and "not applicable".

use crate::package::{IntendedUse, OutOfRangeAge, Trust};

use super::GateAttributes;

/// What the gate decided for one image.
#[derive(Debug, Clone, PartialEq)]
pub enum GateDecision {
    /// Inside the intended use. `notes` lists attributes that were not
    /// recorded and so could not be checked (shown to clinicians).
    Applicable {
        /// e.g. "Body Part Examined is not recorded; assumed CHEST".
        notes: Vec<String>,
    },
    /// Usable, but the branch's opinions are trust-discounted by `trust`.
    Discounted {
        /// Trust factor t ∈ [0, 1].
        trust: f64,
        /// Why, for clinicians.
        reason: String,
        /// Unchecked attributes, as for `Applicable`.
        notes: Vec<String>,
    },
    /// Outside the intended use: the branch must not use this image.
    NotApplicable {
        /// Why, for clinicians, e.g. "Modality CT is not in the package's
        /// intended use (CR, DX)".
        reason: String,
    },
}

fn norm(s: &str) -> String {
    s.trim_matches([' ', '\0']).to_ascii_uppercase()
}

fn listed(list: &[String], value: &str) -> bool {
    let v = norm(value);
    list.iter().any(|x| norm(x) == v)
}

/// Checks one attribute against an intended-use list. `Ok(None)`: fine;
/// `Ok(Some(note))`: not recorded but not required; `Err(reason)`: not
/// applicable.
fn check_list(
    name: &str,
    value: Option<&str>,
    list: &[String],
    required: bool,
) -> Result<Option<String>, String> {
    if list.is_empty() {
        return Ok(None);
    }
    let joined = list.join(", ");
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) if listed(list, v) => Ok(None),
        Some(v) => Err(format!(
            "{name} {v} is not in the package's intended use ({joined})"
        )),
        None if required => Err(format!(
            "{name} is not recorded; the package's intended use is {joined}"
        )),
        None => Ok(Some(format!(
            "{name} is not recorded; assumed to be one of {joined}"
        ))),
    }
}

/// Evaluates the gate for one image's attributes against `intended_use`.
///
/// Modality and Photometric Interpretation must be recorded when the manifest
/// restricts them (the preprocessing depends on the latter); an unrecorded
/// Body Part Examined or View Position is assumed in scope and noted. An
/// unknown age is treated as out of range.
#[must_use]
pub fn evaluate(attrs: &GateAttributes, intended_use: &IntendedUse) -> GateDecision {
    let checks = [
        (
            "Modality",
            attrs.modality.as_deref(),
            &intended_use.modalities,
            true,
        ),
        (
            "Body Part Examined",
            attrs.body_part_examined.as_deref(),
            &intended_use.body_parts,
            false,
        ),
        (
            "View Position",
            attrs.view_position.as_deref(),
            &intended_use.views,
            false,
        ),
        (
            "Photometric Interpretation",
            attrs.photometric_interpretation.as_deref(),
            &intended_use.photometric_interpretations,
            true,
        ),
    ];
    let mut notes = Vec::new();
    for (name, value, list, required) in checks {
        match check_list(name, value, list, required) {
            Ok(Some(note)) => notes.push(note),
            Ok(None) => {}
            Err(reason) => return GateDecision::NotApplicable { reason },
        }
    }
    let Some(range) = intended_use.age_years else {
        return GateDecision::Applicable { notes };
    };
    let range_text = format!("{}–{} years", fmt_num(range.min), fmt_num(range.max));
    let problem = match patient_age_years(attrs) {
        Some(age) if range.contains(age.floor()) => return GateDecision::Applicable { notes },
        Some(age) => format!(
            "patient age {} is outside the package's intended use of {range_text}",
            fmt_age(age)
        ),
        None => format!(
            "patient age is unknown (no Patient's Age, nor Patient's Birth Date with Study \
             Date); the package's intended use is {range_text}"
        ),
    };
    match intended_use.out_of_range_age {
        Some(OutOfRangeAge::Discount(Trust { trust })) => GateDecision::Discounted {
            trust,
            reason: format!("{problem}; opinion discounted by {}", fmt_num(trust)),
            notes,
        },
        Some(OutOfRangeAge::NotApplicable) | None => {
            GateDecision::NotApplicable { reason: problem }
        }
    }
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x}")
    }
}

fn fmt_age(years: f64) -> String {
    if years >= 2.0 {
        format!("{:.0} years", years.floor())
    } else {
        format!("{:.0} months", (years * 12.0).floor())
    }
}

/// The patient's age in (fractional) years at the study: from Patient's Age
/// (AS, `nnnD`, `nnnW`, `nnnM` or `nnnY`; days and weeks over 365.25 days a
/// year, months over 12) when it parses, otherwise from Patient's Birth Date
/// and Study Date (DA, `YYYYMMDD`, or the ACR-NEMA `YYYY.MM.DD`), as days
/// between them over 365.2425. `None` when neither gives a non-negative age.
#[must_use]
pub fn patient_age_years(attrs: &GateAttributes) -> Option<f64> {
    if let Some(age) = attrs.patient_age.as_deref().and_then(parse_age_string) {
        return Some(age);
    }
    let birth = day_number(attrs.patient_birth_date.as_deref()?)?;
    let study = day_number(attrs.study_date.as_deref()?)?;
    (study >= birth).then(|| (study - birth) as f64 / 365.2425)
}

/// Parses a DICOM Age String (PS3.5 §6.2, AS): three digits and a unit
/// letter, e.g. `045Y` → 45.0, `006M` → 0.5. Lenient about padding and
/// the digit count.
#[must_use]
pub fn parse_age_string(s: &str) -> Option<f64> {
    let s = s.trim_matches([' ', '\0']);
    let unit = s.chars().last()?;
    let digits = s.get(..s.len() - unit.len_utf8())?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: f64 = digits.parse().ok()?;
    match unit.to_ascii_uppercase() {
        'D' => Some(n / 365.25),
        'W' => Some(n * 7.0 / 365.25),
        'M' => Some(n / 12.0),
        'Y' => Some(n),
        _ => None,
    }
}

/// Days since 1970-01-01 of a DICOM date (DA), or `None` if it does not
/// parse as a real calendar date.
fn day_number(s: &str) -> Option<i64> {
    let digits: String = s
        .trim_matches([' ', '\0'])
        .chars()
        .filter(|c| *c != '.')
        .collect();
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y: i64 = digits.get(0..4)?.parse().ok()?;
    let m: i64 = digits.get(4..6)?.parse().ok()?;
    let d: i64 = digits.get(6..8)?.parse().ok()?;
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in_month = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if !(1..=days_in_month).contains(&d) {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::AgeRange;

    fn use_() -> IntendedUse {
        IntendedUse {
            summary: String::new(),
            validated_for_clinical_use: false,
            modalities: vec!["CR".into(), "DX".into()],
            body_parts: vec!["CHEST".into()],
            views: vec!["PA".into(), "AP".into()],
            age_years: Some(AgeRange { min: 1.0, max: 5.0 }),
            photometric_interpretations: vec!["MONOCHROME1".into(), "MONOCHROME2".into()],
            languages: vec![],
            out_of_range_age: Some(OutOfRangeAge::Discount(Trust { trust: 0.2 })),
        }
    }

    fn chest(age: &str) -> GateAttributes {
        GateAttributes {
            modality: Some("CR".into()),
            body_part_examined: Some("chest".into()),
            view_position: Some("PA".into()),
            photometric_interpretation: Some("MONOCHROME1".into()),
            patient_age: Some(age.into()),
            ..GateAttributes::default()
        }
    }

    #[test]
    fn age_strings_and_dates() {
        assert_eq!(parse_age_string("045Y"), Some(45.0));
        assert_eq!(parse_age_string("006M"), Some(0.5));
        assert_eq!(parse_age_string("014D"), Some(14.0 / 365.25));
        assert_eq!(parse_age_string("Y"), None);
        assert_eq!(parse_age_string("04xY"), None);
        assert_eq!(day_number("19700101"), Some(0));
        assert_eq!(day_number("20000301"), Some(11_017));
        assert_eq!(day_number("20230229"), None);
        let attrs = GateAttributes {
            patient_birth_date: Some("20190615".into()),
            study_date: Some("2023.06.14".into()),
            ..GateAttributes::default()
        };
        let age = patient_age_years(&attrs).unwrap();
        assert!(age > 3.99 && age < 4.0, "{age}");
    }

    #[test]
    fn gate_decisions() {
        assert_eq!(
            evaluate(&chest("004Y"), &use_()),
            GateDecision::Applicable { notes: vec![] }
        );
        // 5 years 11 months is 5 completed years: inside 1–5.
        assert!(matches!(
            evaluate(&chest("071M"), &use_()),
            GateDecision::Applicable { .. }
        ));
        match evaluate(&chest("045Y"), &use_()) {
            GateDecision::Discounted { trust, reason, .. } => {
                assert_eq!(trust, 0.2);
                assert_eq!(
                    reason,
                    "patient age 45 years is outside the package's intended use of 1–5 years; \
                     opinion discounted by 0.2"
                );
            }
            other => panic!("{other:?}"),
        }
        let mut ct = chest("004Y");
        ct.modality = Some("CT".into());
        assert_eq!(
            evaluate(&ct, &use_()),
            GateDecision::NotApplicable {
                reason: "Modality CT is not in the package's intended use (CR, DX)".into()
            }
        );
        let mut no_body = chest("004Y");
        no_body.body_part_examined = None;
        assert!(matches!(
            evaluate(&no_body, &use_()),
            GateDecision::Applicable { notes } if notes.len() == 1
        ));
        let mut strict = use_();
        strict.out_of_range_age = None;
        assert!(matches!(
            evaluate(&chest("045Y"), &strict),
            GateDecision::NotApplicable { .. }
        ));
    }
}
