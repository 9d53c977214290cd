//! The section header spellings the sectionizer recognises, by
//! [`SectionKind`], with where each group comes from. Patterns use the
//! phrase syntax of [`crate::phrase`] (`[optional ]`, `(a|b)`), matched
//! case-insensitively on whole tokens at the start of a line; names may be
//! joined ("INDICATION/CLINICAL QUESTION:", see [`crate::sections`]).
//!
//! Sources of the radiology spellings (facts, not text, taken from them):
//! - DICOM PS3.16, TID 2000 "Basic Diagnostic Imaging Report" and its
//!   section concepts in CID 7001 "Diagnostic Imaging Report Headings"
//!   (History, Request, Indications for Procedure, Current and Prior
//!   Procedure Descriptions, Comparison, Findings, Impressions,
//!   Recommendations, Conclusions, Summary, Addendum);
//! - the LOINC radiology report section codes used by HL7 C-CDA's
//!   Diagnostic Imaging Report and by US Core DiagnosticReport note
//!   content (18785-6 Reason for study, 55752-0 Clinical information,
//!   18834-2 Comparison study, 55111-9 Current imaging procedure
//!   descriptions, 18782-3 Study observation, 19005-8 Impression,
//!   18783-1 Study recommendation);
//! - the RSNA RadReport template headings (CLINICAL INFORMATION,
//!   COMPARISON, TECHNIQUE, FINDINGS, IMPRESSION) and the ACR Practice
//!   Parameter for Communication of Diagnostic Imaging Findings (a report
//!   states the clinical history / indication / clinical question);
//! - spellings seen in hospital feeds: "CLINICAL QUESTION", "REASON FOR
//!   EXAM", "EXAM REASON", "HISTORY AND INDICATION".
//!
//! Clinical note spellings (CC, HPI, PMH, A/P, …) follow the section names of
//! HL7 C-CDA's History and Physical and Progress Note documents and their
//! common abbreviations.

use fusion_schemas::note::SectionKind;

/// Header spellings by kind; the first kind whose pattern matches the
/// longest run of tokens wins.
pub const HEADERS: &[(SectionKind, &str)] = &[
    (
        SectionKind::Indication,
        "[clinical ]indication[s]|indication[s] for (exam|examination|study|procedure)\
         |reason[s]|reason for (exam|examination|study|request|referral|imaging|visit|procedure)\
         |(exam|examination|study) reason|[clinical ]history|history and indication[s]\
         |clinical (information|data|details|question|questions|notes|summary)|question\
         |request|requested examination|patient presentation",
    ),
    (
        SectionKind::Comparison,
        "comparison[s]|comparison (study|exam|studies|examination)|prior (study|studies|exam|exams)|prior[s]",
    ),
    (
        SectionKind::Technique,
        "technique|views|protocol|procedure description|current procedure description[s]",
    ),
    (
        SectionKind::Findings,
        "finding[s]|observation[s]|description",
    ),
    (
        SectionKind::Impression,
        "impression[s]|final impression|conclusion[s]|interpretation|opinion|summary|diagnosis",
    ),
    (
        SectionKind::ChiefComplaint,
        "chief complaint[s]|cc|presenting complaint|reason for admission",
    ),
    (
        SectionKind::HistoryOfPresentIllness,
        "hpi|history of [the ]present illness|present illness",
    ),
    (SectionKind::ReviewOfSystems, "ros|review of system[s]"),
    (
        SectionKind::PastHistory,
        "pmh|psh|pmhx|past (medical|surgical) history|past history|past medical and surgical history|pmh/psh|medical history",
    ),
    (
        SectionKind::Medications,
        "medication[s]|meds|(current|home|admission|discharge) (medications|meds)|medications on admission",
    ),
    (SectionKind::Allergies, "allerg(y|ies)|drug allergies"),
    (SectionKind::FamilyHistory, "family (history|hx)|fh|fhx"),
    (SectionKind::SocialHistory, "social (history|hx)|sh|shx"),
    (
        SectionKind::Assessment,
        "assessment|a/p|a & p|assessment (and|&|/) plan|impression (and|&|/) plan",
    ),
    (SectionKind::Plan, "plan|recommendation[s]"),
    (
        SectionKind::Other,
        "addendum|exam|examination|procedure|physical exam[ination]|vital signs|hospital course|laboratory data|labs|wet read",
    ),
];
