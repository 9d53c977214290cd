//! Clinical note understanding for the fusion service: sections, sentences,
//! CheXpert observation mentions with ConText assertion status, note-level
//! labels, and an evaluation against the public NegEx test kit.
//!
//! Pure functions over `&str`; every span is a byte range into the text
//! given. Start with [`analyze`]:
//!
//! ```
//! use fusion_notes::{NoteLabel, Observation, analyze};
//!
//! let report = "FINDINGS: Small left effusion.\nIMPRESSION: No pneumothorax. Possible pneumonia.";
//! let analysis = analyze(report);
//! assert_eq!(analysis.labels[&Observation::PleuralEffusion], NoteLabel::Positive);
//! assert_eq!(analysis.labels[&Observation::Pneumothorax], NoteLabel::Negative);
//! assert_eq!(analysis.labels[&Observation::Pneumonia], NoteLabel::Uncertain);
//! ```

pub mod assertion;
pub mod eval;
pub mod intake;
pub mod labelled;
pub mod lexicon;
pub mod mentions;
pub mod sections;
pub mod sentences;

mod phrase;
pub mod section_headers;
mod span;
mod token;

pub use assertion::{Assertion, Context, TriggerCategory, TriggerHit, assess};
pub use lexicon::{MatchKind, Observation, ObservationMatch, find_concept, find_observations};
pub use mentions::{Mention, NoteAnalysis, NoteLabel, analyze};
pub use sections::{Section, SectionKind, sectionize};
pub use sentences::split_sentences;
pub use span::Span;
