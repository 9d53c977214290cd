//! Evaluation of the negation detector on the public NegEx test kit
//! (Chapman et al. 2001; the kit of annotated sentences distributed with
//! NegEx/ConText), with the published figures on the same kit for comparison.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::Span;
use crate::assertion::{Assertion, assess};
use crate::lexicon::concept_occurrences;
use crate::sentences::split_sentences;

/// Why the kit could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A data row does not have the kit's six tab-separated columns.
    #[error("line {line}: expected 6 tab-separated fields, found {found}")]
    Format {
        /// 1-based line number in the file.
        line: usize,
        /// Fields found.
        found: usize,
    },
    /// A negation status other than Negated, Affirmed or Possible.
    #[error("line {line}: unknown negation status {status:?}")]
    Status {
        /// 1-based line number in the file.
        line: usize,
        /// The value found.
        status: String,
    },
}

/// Negation results on the kit. "Positive" means negated: a true positive
/// is a row predicted [`Assertion::Absent`] whose gold status is Negated.
/// Rows whose gold status is Possible count as not negated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct NegexReport {
    /// Data rows read.
    pub rows: usize,
    /// Predicted negated, gold Negated.
    pub true_positive: usize,
    /// Predicted negated, gold not Negated.
    pub false_positive: usize,
    /// Predicted not negated, gold not Negated.
    pub true_negative: usize,
    /// Predicted not negated, gold Negated.
    pub false_negative: usize,
    /// Rows predicted [`Assertion::Possible`].
    pub predicted_possible: usize,
    /// Rows whose gold status is Possible.
    pub gold_possible: usize,
    /// Rows whose condition was not found in the sentence; they are scored
    /// as predicted not negated.
    pub not_located: usize,
}

impl NegexReport {
    /// TP / (TP + FP); 0 when nothing was predicted negated.
    #[must_use]
    pub fn precision(&self) -> f64 {
        ratio(self.true_positive, self.true_positive + self.false_positive)
    }

    /// TP / (TP + FN); 0 when nothing is gold negated.
    #[must_use]
    pub fn recall(&self) -> f64 {
        ratio(self.true_positive, self.true_positive + self.false_negative)
    }

    /// Harmonic mean of precision and recall; 0 when both are 0.
    #[must_use]
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// Published negation figures on this kit: (system, recall, precision, F).
const PUBLISHED: [(&str, f64, f64, f64); 2] = [
    ("GenNegEx 1.2", 0.959, 0.933, 0.946),
    ("ConText (Harkema et al. 2009)", 0.978, 0.984, 0.981),
];

impl fmt::Display for NegexReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "NegEx test kit: {} rows ({} condition not located)",
            self.rows, self.not_located
        )?;
        writeln!(f, "                    gold Negated  gold not")?;
        writeln!(
            f,
            "predicted negated   {:>12}  {:>8}",
            self.true_positive, self.false_positive
        )?;
        writeln!(
            f,
            "predicted not       {:>12}  {:>8}",
            self.false_negative, self.true_negative
        )?;
        writeln!(
            f,
            "predicted possible: {}; gold possible: {}",
            self.predicted_possible, self.gold_possible
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<32} {:>7} {:>9} {:>7}",
            "system", "recall", "precision", "F"
        )?;
        let ours = ("fusion-notes", self.recall(), self.precision(), self.f1());
        for (name, r, p, f1) in std::iter::once(ours).chain(PUBLISHED) {
            writeln!(f, "{name:<32} {r:>7.3} {p:>9.3} {f1:>7.3}")?;
        }
        Ok(())
    }
}

/// Reads the NegEx kit TSV at `path` (header line, then rows of: line
/// number, condition, sentence, negation status, temporality, experiencer;
/// fields are tab-separated and quotes are literal), locates each condition
/// in its sentence, runs [`assess`] on it, and scores negation.
///
/// # Errors
/// [`EvalError::Io`] when the file cannot be read, [`EvalError::Format`] for
/// a row without six fields, [`EvalError::Status`] for an unknown status.
pub fn negex_eval(path: &Path) -> Result<NegexReport, EvalError> {
    let content = std::fs::read_to_string(path).map_err(|source| EvalError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut report = NegexReport::default();
    for (index, line) in content.lines().enumerate().skip(1) {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let &[_, condition, sentence, status, _, _] = fields.as_slice() else {
            return Err(EvalError::Format {
                line: index + 1,
                found: fields.len(),
            });
        };
        let gold_negated = match status.trim().to_ascii_lowercase().as_str() {
            "negated" => true,
            "affirmed" => false,
            "possible" => {
                report.gold_possible += 1;
                false
            }
            other => {
                return Err(EvalError::Status {
                    line: index + 1,
                    status: other.to_owned(),
                });
            }
        };
        report.rows += 1;
        let predicted = match locate(sentence, condition) {
            Some(target) => assert_in_sentence(sentence, target),
            None => {
                report.not_located += 1;
                Assertion::Present
            }
        };
        if predicted == Assertion::Possible {
            report.predicted_possible += 1;
        }
        match (predicted == Assertion::Absent, gold_negated) {
            (true, true) => report.true_positive += 1,
            (true, false) => report.false_positive += 1,
            (false, true) => report.false_negative += 1,
            (false, false) => report.true_negative += 1,
        }
    }
    Ok(report)
}

/// Runs the detector on `target` within the sentence of `text` (as split by
/// [`split_sentences`]) that holds it: a kit row can hold more than one
/// sentence, and scopes end at sentence ends.
pub(crate) fn assert_in_sentence(text: &str, target: Span) -> Assertion {
    let sentence = split_sentences(text)
        .into_iter()
        .find(|s| s.start <= target.start && target.start < s.end)
        .unwrap_or(Span::new(0, text.len()));
    let sentence = Span::new(
        sentence.start.min(target.start),
        sentence.end.max(target.end),
    );
    assess(text, sentence, &[target])
        .first()
        .map_or(Assertion::Present, |c| c.assertion)
}

/// Finds `condition` in `sentence`: its words in order, case-insensitive,
/// any whitespace between. When it occurs more than once, an occurrence
/// written in upper case is preferred, since that is how the kit marks the
/// annotated phrase, and among those one not followed by a colon (a field
/// label such as "ALLERGIES:" is not a statement); otherwise the first. When
/// no word-aligned occurrence exists, falls back to a case-insensitive
/// substring match with whitespace runs collapsed, for text whose words run
/// together.
pub(crate) fn locate(sentence: &str, condition: &str) -> Option<Span> {
    let hits = concept_occurrences(sentence, condition);
    let upper = |s: &&Span| {
        let raw = &sentence[s.start..s.end];
        raw.chars().any(char::is_alphabetic) && !raw.chars().any(char::is_lowercase)
    };
    let label = |s: &&Span| sentence[s.end..].trim_start().starts_with(':');
    hits.iter()
        .find(|s| upper(s) && !label(s))
        .or_else(|| hits.iter().find(upper))
        .or_else(|| hits.first())
        .copied()
        .or_else(|| substring(sentence, condition))
}

/// Case-insensitive substring search with whitespace runs collapsed; the
/// span is in `haystack`'s bytes.
fn substring(haystack: &str, needle: &str) -> Option<Span> {
    // Collapsed lower-case haystack, with each of its bytes' source offset.
    let mut flat = String::new();
    let mut origin = Vec::new();
    for (i, c) in haystack.char_indices() {
        let c = if c.is_whitespace() {
            ' '
        } else {
            c.to_ascii_lowercase()
        };
        if c == ' ' && flat.ends_with(' ') {
            continue;
        }
        flat.push(c);
        origin.extend(std::iter::repeat_n(i, c.len_utf8()));
    }
    let needle = needle
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase();
    if needle.is_empty() {
        return None;
    }
    let at = flat.find(&needle)?;
    let last = at + needle.len() - 1;
    let end = origin[last]
        + haystack[origin[last]..]
            .chars()
            .next()
            .map_or(1, char::len_utf8);
    Some(Span::new(origin[at], end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_prefers_the_upper_case_occurrence() {
        let s = "Cough today; prior COUGH resolved.";
        assert_eq!(locate(s, "cough"), Some(Span::new(19, 24)));
        assert_eq!(
            locate("no  Chest   pain", "chest pain"),
            Some(Span::new(4, 16))
        );
        assert_eq!(locate("nothing here", "edema"), None);
        assert_eq!(
            locate("ALLERGIES: no ALLERGIES", "allergies"),
            Some(Span::new(14, 23))
        );
        assert_eq!(
            locate("the RESECTIONto  margin", "resection"),
            Some(Span::new(4, 13))
        );
    }

    #[test]
    fn reads_a_small_kit_and_scores_it() {
        let dir = std::env::temp_dir().join(format!("negex-kit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("kit.txt");
        let rows = "line\tCondition\tsentence\tneg\ttemp\texp\n\
            1\twheeze\tShe has no WHEEZE today.\tNegated\tRecent\tPatient\n\
            2\trash\tA \"red\" RASH on the arm.\tAffirmed\tRecent\tPatient\n\
            3\tgout\tNo fever; GOUT flared.\tAffirmed\tRecent\tPatient\n\
            4\tsepsis\tNot in this sentence.\tNegated\tRecent\tPatient\n";
        std::fs::write(&path, rows).unwrap();
        let report = negex_eval(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(report.rows, 4);
        assert_eq!(report.not_located, 1);
        assert_eq!((report.true_positive, report.false_negative), (1, 1));
        assert!((report.recall() - 0.5).abs() < 1e-9);
        assert!(report.to_string().contains("ConText"));
    }

    #[test]
    fn malformed_rows_are_errors() {
        let dir = std::env::temp_dir().join(format!("negex-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("kit.txt");
        std::fs::write(&path, "header\n1\tonly two\n").unwrap();
        let err = negex_eval(&path).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(err, EvalError::Format { line: 2, found: 2 }));
        assert!(matches!(
            negex_eval(Path::new("/nonexistent/kit")),
            Err(EvalError::Io { .. })
        ));
    }
}
