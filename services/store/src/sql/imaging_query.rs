//! Searching the imaging index (QIDO-RS, PS3.18 §10.6): attribute matching
//! with DICOM wildcards (PS3.4 §C.2.2.2.4) in SQL, and the study and series
//! attributes a search computes or reads from the stored JSON.

use fusion_schemas::{AccessionNumber, PatientId};

use crate::records::StudyRecord;

/// Adds `AND <column> = value`, or `LIKE` when the value has DICOM wildcards.
pub(crate) fn push_match<DB: sqlx::Database>(
    qb: &mut sqlx::QueryBuilder<DB>,
    column: &str,
    value: &str,
    like: &str,
) where
    String: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    if value.contains(['*', '?']) {
        qb.push(format!(" AND {column} {like} "))
            .push_bind(crate::records::like_pattern(value))
            .push(" ESCAPE '\\'");
    } else {
        qb.push(format!(" AND {column} = "))
            .push_bind(value.to_owned());
    }
}

/// Adds `AND <column> IN (…)` for list-of-UID matching.
pub(crate) fn push_in<DB: sqlx::Database>(
    qb: &mut sqlx::QueryBuilder<DB>,
    column: &str,
    values: &[String],
) where
    String: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    if values.is_empty() {
        return;
    }
    qb.push(format!(" AND {column} IN ("));
    let mut list = qb.separated(", ");
    for v in values {
        list.push_bind(v.clone());
    }
    list.push_unseparated(")");
}

/// The study-level columns of a search restricted to one submitter: counts
/// and the attributes shown come from that submitter's instances only; the
/// caller binds the submitter three times, in order, after each of the
/// three pieces but the last (issue #14, finding 7).
pub(crate) const OWN_STUDY_COLUMNS: [&str; 4] = [
    "SELECT s.study_instance_uid, s.patient_id, s.patient_name, \
     s.accession_number, s.study_date, s.description, s.modalities, \
     (SELECT COUNT(*) FROM instances i WHERE i.study_instance_uid = s.study_instance_uid \
       AND i.submitted_by = ",
    "), (SELECT COUNT(DISTINCT i.series_instance_uid) FROM instances i \
       WHERE i.study_instance_uid = s.study_instance_uid AND i.submitted_by = ",
    "), COALESCE((SELECT i.attributes FROM instances i WHERE i.study_instance_uid = s.study_instance_uid \
       AND i.submitted_by = ",
    " ORDER BY i.received_at, i.sop_instance_uid LIMIT 1), '{}') FROM studies s WHERE 1 = 1",
];

/// As [`OWN_STUDY_COLUMNS`], for series: two binds of the submitter.
pub(crate) const OWN_SERIES_COLUMNS: [&str; 3] = [
    "SELECT se.series_instance_uid, se.study_instance_uid, se.modality, se.series_number, \
     (SELECT COUNT(*) FROM instances i WHERE i.series_instance_uid = se.series_instance_uid \
       AND i.submitted_by = ",
    "), COALESCE((SELECT i.attributes FROM instances i WHERE i.series_instance_uid = se.series_instance_uid \
       AND i.submitted_by = ",
    " ORDER BY i.received_at, i.sop_instance_uid LIMIT 1), '{}') FROM series se WHERE 1 = 1",
];

/// The first value of `tag` in DICOM JSON (PS3.18 F.2), as text: a Person
/// Name's Alphabetic group, else the string.
fn json_text(attributes: &serde_json::Value, tag: &str) -> Option<String> {
    let v = attributes.get(tag)?.get("Value")?.get(0)?;
    v.get("Alphabetic")
        .and_then(|a| a.as_str())
        .or_else(|| v.as_str())
        .map(str::to_owned)
}

/// Replaces the study-level values a study row took from whichever
/// instance came first by those of the submitter's own first instance
/// (`record.attributes`, from [`OWN_STUDY_COLUMNS`]) and `modalities`, so
/// that a submitter reads back only what it sent.
pub(crate) fn own_view(record: &mut StudyRecord, modalities: Vec<String>) {
    let a = &record.attributes;
    record.patient_id = json_text(a, "00100020").and_then(|p| PatientId::parse(&p).ok());
    record.patient_name = json_text(a, "00100010");
    record.accession_number =
        json_text(a, "00080050").and_then(|p| AccessionNumber::parse(&p).ok());
    record.study_date = json_text(a, "00080020");
    record.description = json_text(a, "00081030");
    record.modalities = modalities;
}

/// DICOM wildcard matching (PS3.4 §C.2.2.2.4: `*` any run, `?` one
/// character), optionally case-insensitive.
fn wildcard(pattern: &str, value: &str, fold: bool) -> bool {
    let norm = |s: &str| -> Vec<char> {
        if fold {
            s.to_lowercase().chars().collect()
        } else {
            s.chars().collect()
        }
    };
    let (p, v) = (norm(pattern), norm(value));
    // Classic two-pointer glob match with backtracking to the last `*`.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < v.len() {
        if i < p.len() && (p[i] == '?' || p[i] == v[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

/// Whether a study in its submitter's own view ([`own_view`]) still meets
/// the match keys of `q`: the SQL matched the study row, whose values may
/// come from another sender's instance.
pub(crate) fn own_view_matches(record: &StudyRecord, q: &crate::StudyQuery) -> bool {
    let text = |key: &Option<String>, value: Option<&str>, fold: bool| match key {
        None => true,
        Some(k) => value.is_some_and(|v| wildcard(k, v, fold)),
    };
    let date = record.study_date.as_deref();
    text(
        &q.patient_id,
        record.patient_id.as_ref().map(|p| p.as_str()),
        false,
    ) && text(&q.patient_name, record.patient_name.as_deref(), true)
        && text(
            &q.accession_number,
            record.accession_number.as_ref().map(|a| a.as_str()),
            false,
        )
        && q.study_date_from
            .as_deref()
            .is_none_or(|f| date.is_some_and(|d| d >= f))
        && q.study_date_to
            .as_deref()
            .is_none_or(|t| date.is_some_and(|d| d <= t))
        && q.modality
            .as_deref()
            .is_none_or(|m| record.modalities.iter().any(|x| wildcard(m, x, false)))
}
