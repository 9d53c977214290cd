//! A site's labelled reports: a CSV of report sections with report-level
//! gold per label column, and the label map (TOML) that maps the site's
//! columns onto the service's 14 CheXpert observations.
//!
//! The map says which columns hold the report id, the split and the report
//! sections (each written into the note under its header, as a PACS or RIS
//! would send it: `INDICATION: …`), which gold columns feed which
//! observation (several columns of one observation are OR-ed, e.g.
//! Mass | Nodule → Lung Lesion), and which columns are deliberately left
//! unmapped, with why. A gold column the map neither maps nor lists as
//! unmapped is an error: nothing is dropped silently.
//!
//! Gold values are `1` (present) or `0` (not present); an empty cell is
//! "no gold" for that column, so the observation has no gold for that report
//! unless another of its columns is 1.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::lexicon::Observation;

/// Why a labelled set or its map could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LabelledError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The map is not valid TOML of the expected shape.
    #[error("label map {path}: {message}")]
    Map {
        /// The map file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The CSV is malformed (names the 1-based line where known).
    #[error("{path}: line {line}: {message}")]
    Csv {
        /// The CSV file.
        path: PathBuf,
        /// 1-based line number (the header is line 1).
        line: u64,
        /// What is wrong.
        message: String,
    },
}

/// The text columns of a labelled set.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextColumns {
    /// Column of the report id.
    pub id: String,
    /// Column of the split (`train`, `validation`, …); optional.
    #[serde(default)]
    pub split: Option<String>,
    /// Report sections in order: `[column, header]`; a non-empty cell is
    /// written as `HEADER: text` on its own paragraph.
    pub sections: Vec<[String; 2]>,
}

/// How a site's gold columns map onto the service's observations.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelMap {
    /// Name of the map (recorded in model packages trained with it).
    pub name: String,
    /// Where the data comes from, and its terms of use.
    pub source: String,
    /// Whether parameters fitted on this data may leave the site (a
    /// public research set: yes; a hospital's own reviewed reports: no, the
    /// default). Written into the trained package's manifest and card.
    #[serde(default)]
    pub redistributable: bool,
    /// The text columns.
    pub text: TextColumns,
    /// Observation (snake_case) → the gold columns that feed it (OR-ed).
    pub observations: BTreeMap<Observation, Vec<String>>,
    /// Gold columns deliberately not mapped → why.
    #[serde(default)]
    pub unmapped: BTreeMap<String, String>,
    /// Columns that are neither text nor gold (tags, free metadata) and
    /// must never be read as input; listed so the reader can tell them
    /// from a forgotten gold column.
    #[serde(default)]
    pub ignored: Vec<String>,
}

impl LabelMap {
    /// Reads and checks a map file: every observation has at least one
    /// column and no column feeds two observations or is both mapped and
    /// unmapped.
    ///
    /// # Errors
    /// [`LabelledError::Io`] or [`LabelledError::Map`].
    pub fn read(path: &Path) -> Result<Self, LabelledError> {
        let text = std::fs::read_to_string(path).map_err(|source| LabelledError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|message| LabelledError::Map {
            path: path.to_path_buf(),
            message,
        })
    }

    /// [`LabelMap::read`] on the text of a map.
    ///
    /// # Errors
    /// A message naming what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let map: Self = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        if map.observations.is_empty() {
            return Err(
                "[observations] maps no observation: nothing to evaluate or train".to_owned(),
            );
        }
        let text_columns: Vec<&str> = std::iter::once(map.text.id.as_str())
            .chain(map.text.split.as_deref())
            .chain(map.text.sections.iter().map(|[c, _]| c.as_str()))
            .collect();
        let mut seen: BTreeMap<&str, Observation> = BTreeMap::new();
        for (observation, columns) in &map.observations {
            if columns.is_empty() {
                return Err(format!("{observation} has no column"));
            }
            for c in columns {
                if let Some(other) = seen.insert(c, *observation) {
                    return Err(format!("column {c:?} feeds both {other} and {observation}"));
                }
                if map.unmapped.contains_key(c) {
                    return Err(format!("column {c:?} is both mapped and unmapped"));
                }
                if text_columns.contains(&c.as_str()) {
                    return Err(format!(
                        "column {c:?} is a text column (id, split or section) and gold for \
                         {observation}"
                    ));
                }
            }
        }
        Ok(map)
    }

    /// The observations this map gives gold for, in CheXpert order.
    #[must_use]
    pub fn mapped(&self) -> Vec<Observation> {
        Observation::ALL
            .into_iter()
            .filter(|o| self.observations.contains_key(o))
            .collect()
    }
}

/// One labelled report, ready for the note path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledReport {
    /// The report id.
    pub id: String,
    /// Its split (empty when the map names no split column).
    pub split: String,
    /// The note as the service receives it: `HEADER: text` paragraphs.
    pub text: String,
    /// Gold per mapped observation: `true` present, `false` not present;
    /// an observation without gold for this report is absent.
    pub gold: BTreeMap<Observation, bool>,
}

/// Reads every report of a labelled CSV through `map`, keeping those whose
/// split is `split` (all when `None`).
///
/// # Errors
/// [`LabelledError::Io`]; [`LabelledError::Csv`] for a missing column, a
/// gold column the map does not account for, or a gold cell other than
/// `0`, `1` or empty.
pub fn read_reports(
    path: &Path,
    map: &LabelMap,
    split: Option<&str>,
) -> Result<Vec<LabelledReport>, LabelledError> {
    let file = std::fs::File::open(path).map_err(|source| LabelledError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    read_reports_from(file, path, map, split)
}

/// [`read_reports`] on any reader; `path` names it in errors.
///
/// # Errors
/// As [`read_reports`].
pub fn read_reports_from(
    reader: impl std::io::Read,
    path: &Path,
    map: &LabelMap,
    split: Option<&str>,
) -> Result<Vec<LabelledReport>, LabelledError> {
    let csv_error = |line: u64, message: String| LabelledError::Csv {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(reader);
    let headers = rdr
        .headers()
        .map_err(|e| csv_error(1, e.to_string()))?
        .clone();
    let index = |name: &str| -> Result<usize, LabelledError> {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| csv_error(1, format!("no column {name:?}")))
    };
    let id = index(&map.text.id)?;
    let split_col = map.text.split.as_deref().map(index).transpose()?;
    let sections = map
        .text
        .sections
        .iter()
        .map(|[column, header]| Ok((index(column)?, header.clone())))
        .collect::<Result<Vec<_>, LabelledError>>()?;
    let gold_cols = map
        .observations
        .iter()
        .map(|(o, cols)| {
            let idx = cols
                .iter()
                .map(|c| index(c))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((*o, idx))
        })
        .collect::<Result<Vec<_>, LabelledError>>()?;
    // Every column must be accounted for: text, gold, unmapped or ignored.
    for h in &headers {
        let known = h == map.text.id
            || map.text.split.as_deref() == Some(h)
            || map.text.sections.iter().any(|[c, _]| c == h)
            || map.observations.values().flatten().any(|c| c == h)
            || map.unmapped.contains_key(h)
            || map.ignored.iter().any(|c| c == h);
        if !known {
            return Err(csv_error(
                1,
                format!(
                    "column {h:?} is not in the label map (map it, or list it as unmapped or ignored)"
                ),
            ));
        }
    }
    let mut out = Vec::new();
    for record in rdr.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            csv_error(line, e.to_string())
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let row_split = split_col
            .and_then(|c| record.get(c))
            .unwrap_or_default()
            .to_owned();
        if split.is_some_and(|s| s != row_split) {
            continue;
        }
        let mut text = String::new();
        for (col, header) in &sections {
            let cell = record.get(*col).unwrap_or_default().trim();
            if cell.is_empty() {
                continue;
            }
            if !text.is_empty() {
                text.push_str("\n\n");
            }
            text.push_str(header);
            text.push_str(": ");
            text.push_str(cell);
        }
        let mut gold = BTreeMap::new();
        for (observation, cols) in &gold_cols {
            let mut value: Option<bool> = None;
            for &c in cols {
                match record.get(c).unwrap_or_default().trim() {
                    "" => {}
                    "0" => value = Some(value.unwrap_or(false)),
                    "1" => value = Some(true),
                    other => {
                        return Err(csv_error(
                            line,
                            format!(
                                "column {:?}: a gold value of {} characters is not 0, 1 or \
                                 empty (the value is not shown: it may be report text)",
                                &headers[c],
                                other.chars().count()
                            ),
                        ));
                    }
                }
            }
            if let Some(v) = value {
                gold.insert(*observation, v);
            }
        }
        out.push(LabelledReport {
            id: record.get(id).unwrap_or_default().to_owned(),
            split: row_split,
            text,
            gold,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAP: &str = r#"
name = "tiny"
source = "invented"
ignored = ["tags"]
[text]
id = "id"
split = "split"
sections = [["why", "INDICATION"], ["seen", "FINDINGS"], ["said", "IMPRESSION"]]
[observations]
pleural_effusion = ["Effusion"]
lung_lesion = ["Mass", "Nodule"]
[unmapped]
Hernia = "no CheXpert observation"
"#;

    fn read(csv: &str, split: Option<&str>) -> Result<Vec<LabelledReport>, LabelledError> {
        let map = LabelMap::parse(MAP).unwrap();
        read_reports_from(csv.as_bytes(), Path::new("t.csv"), &map, split)
    }

    #[test]
    fn sections_are_written_under_headers_and_columns_or_ed() {
        let csv = "id,split,why,seen,said,tags,Effusion,Mass,Nodule,Hernia\n\
                   r1,train,Cough.,,Small nodule.,x,0,0,1,0\n\
                   r2,validation,,Clear.,Normal.,y,1,,,0\n";
        let all = read(csv, None).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(
            all[0].text,
            "INDICATION: Cough.\n\nIMPRESSION: Small nodule."
        );
        assert!(all[0].gold[&Observation::LungLesion]);
        assert!(!all[0].gold[&Observation::PleuralEffusion]);
        assert!(!all[1].gold.contains_key(&Observation::LungLesion));
        let val = read(csv, Some("validation")).unwrap();
        assert_eq!(val.len(), 1);
        assert_eq!(val[0].id, "r2");
    }

    #[test]
    fn unknown_columns_and_bad_gold_are_refused() {
        let extra = "id,split,why,seen,said,tags,Effusion,Mass,Nodule,Hernia,Emphysema\n";
        let e = read(extra, None).unwrap_err().to_string();
        assert!(e.contains("\"Emphysema\" is not in the label map"), "{e}");
        let bad = "id,split,why,seen,said,tags,Effusion,Mass,Nodule,Hernia\n\
                   r1,train,,,,x,2,0,0,0\n";
        let e = read(bad, None).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("\"Effusion\""), "{e}");
        // Text in a gold cell (a shifted row) is never echoed: it may be a
        // report.
        let shifted = "id,split,why,seen,said,tags,Effusion,Mass,Nodule,Hernia\n\
                       r1,train,,,,x,Invented words in a gold cell.,0,0,0\n";
        let e = read(shifted, None).unwrap_err().to_string();
        assert!(e.contains("a gold value of 30 characters"), "{e}");
        assert!(!e.contains("Invented"), "{e}");
        assert!(LabelMap::parse(&MAP.replace("[\"Mass\", \"Nodule\"]", "[\"Effusion\"]")).is_err());
        let e = LabelMap::parse(&MAP.replace("[\"Mass\", \"Nodule\"]", "[\"seen\"]")).unwrap_err();
        assert!(e.contains("is a text column"), "{e}");
        let none = MAP
            .replace("pleural_effusion = [\"Effusion\"]\n", "")
            .replace("lung_lesion = [\"Mass\", \"Nodule\"]\n", "");
        let e = LabelMap::parse(&none).unwrap_err();
        assert!(e.contains("maps no observation"), "{e}");
    }
}
