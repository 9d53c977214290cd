//! Features of one report for one observation's head: what the mention
//! labeller found (the note label, counted mentions by assertion, where they
//! are, the phrases used) and what the frozen MiniLM encoder makes of the
//! sentences that mention the observation and of the impression.
//!
//! Layout of the vector, D = 54 + H + 2·384 with H hash buckets in version 1,
//! and D = 56 + H + 3·384 in version 2, which appends three entries:
//!
//! | range | what |
//! | --- | --- |
//! | 0..4 | the observation's note label, one-hot: positive, negative, uncertain, not mentioned |
//! | 4..7 | ln(1 + n) of counted mentions that are present, absent, possible |
//! | 7..12 | 1 when: a historical mention, a hypothetical mention, a counted mention in the impression, one in the findings, a mention in the indication |
//! | 12..54 | every observation's note label (CheXpert order): positive, negative, uncertain |
//! | 54..54+H | ln(1 + n) per bucket of the mentions' `phrase|assertion[|historical]`, hashed with SHA-256 |
//! | next 384 | mean embedding of the sentences mentioning the observation, L2-normalised (0 when none) |
//! | next 384 | mean embedding of the impression's sentences (of all sentences when there is no impression), L2-normalised |
//! | version 2: next 1 | ln(1 + n) of the report's *unlabelled* sentences: in the findings, the impression or a note without headers (preamble), and without a counted mention of any observation |
//! | version 2: next 1 | ln(1 + n) of old (historical) mentions of any observation in those sections ("calcified granuloma", "healed rib fracture") |
//! | version 2: last 384 | mean embedding of the unlabelled sentences, L2-normalised (0 when none) |
//!
//! Version 2's block is for what the 14 observations do not name: a
//! site whose "normal" excludes incidental findings (degenerative spine,
//! granulomas, a tortuous aorta, scoliosis, a hiatal hernia: Open-i's MeSH
//! `normal`, see `models/maps/CONVENTIONS.md`) states them in sentences the
//! mention labeller has nothing to say about. The No Finding head reads them
//! there; other heads may use them or not (their weights are fitted).

use fusion_schemas::{Assertion, Mention, NoteAnalysis, NoteLabel, Observation, SectionKind, Span};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::text_encoder::{EMBEDDING_DIM, Embedding};

/// Features before the hashed and embedding blocks.
const FIXED: usize = 54;

/// Feature layout versions this build computes.
pub use crate::package::NOTE_FEATURES_VERSIONS as SUPPORTED_VERSIONS;

/// The feature layout a package was trained with (manifest `[heads.features]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    /// Layout version (1 or 2), the table in this module's documentation.
    pub version: u32,
    /// Number of hash buckets H for the mention phrases.
    pub hash_buckets: usize,
}

impl Default for FeatureSpec {
    fn default() -> Self {
        Self {
            version: 2,
            hash_buckets: 128,
        }
    }
}

impl FeatureSpec {
    /// Width D of a feature vector.
    #[must_use]
    pub const fn width(&self) -> usize {
        let v1 = FIXED + self.hash_buckets + 2 * EMBEDDING_DIM;
        if self.version >= 2 {
            v1 + 2 + EMBEDDING_DIM
        } else {
            v1
        }
    }

    /// The feature vectors of every observation in `observations` for one
    /// report: `analysis` of `text`, and `sentence_embeddings` aligned with
    /// `analysis.sentences` (a missing embedding counts as absent). Returns
    /// one D-vector per observation, in the order given.
    #[must_use]
    pub fn features(
        &self,
        analysis: &NoteAnalysis,
        sentence_embeddings: &[Option<Embedding>],
        observations: &[Observation],
    ) -> Vec<Vec<f64>> {
        let embedding_of = |span: Span| -> Option<&Embedding> {
            let k = analysis.sentences.iter().position(|s| *s == span)?;
            sentence_embeddings.get(k)?.as_ref()
        };
        let impression: Vec<&Embedding> = analysis
            .sections
            .iter()
            .filter(|s| s.kind == SectionKind::Impression)
            .flat_map(|section| {
                analysis
                    .sentences
                    .iter()
                    .filter(move |s| section.body.contains(**s))
            })
            .filter_map(|s| embedding_of(*s))
            .collect();
        let report_embedding = if impression.is_empty() {
            mean_normalised(sentence_embeddings.iter().flatten())
        } else {
            mean_normalised(impression.into_iter())
        };
        let mut others = Vec::with_capacity(3 * Observation::ALL.len());
        for o in Observation::ALL {
            let label = analysis
                .labels
                .get(&o)
                .copied()
                .unwrap_or(NoteLabel::NotMentioned);
            others.extend(one_hot(label).into_iter().take(3));
        }
        let unlabelled = (self.version >= 2).then(|| unlabelled_block(analysis, &embedding_of));
        observations
            .iter()
            .map(|&o| {
                let mentions: Vec<&Mention> = analysis
                    .mentions
                    .iter()
                    .filter(|m| m.observation == o)
                    .collect();
                let mut x = Vec::with_capacity(self.width());
                let label = analysis
                    .labels
                    .get(&o)
                    .copied()
                    .unwrap_or(NoteLabel::NotMentioned);
                x.extend(one_hot(label));
                let counted = || mentions.iter().filter(|m| m.counts());
                for a in [Assertion::Present, Assertion::Absent, Assertion::Possible] {
                    x.push(ln1p_count(counted().filter(|m| m.assertion == a).count()));
                }
                x.push(flag(mentions.iter().any(|m| m.historical)));
                x.push(flag(mentions.iter().any(|m| m.hypothetical)));
                x.push(flag(
                    counted().any(|m| m.section == SectionKind::Impression),
                ));
                x.push(flag(counted().any(|m| m.section == SectionKind::Findings)));
                x.push(flag(
                    mentions
                        .iter()
                        .any(|m| m.section == SectionKind::Indication),
                ));
                x.extend_from_slice(&others);
                let mut buckets = vec![0_usize; self.hash_buckets];
                for m in &mentions {
                    if let Some(k) = bucket(&phrase_key(m), self.hash_buckets) {
                        buckets[k] += 1;
                    }
                }
                x.extend(buckets.into_iter().map(ln1p_count));
                let mentioned: Vec<&Embedding> = mentions
                    .iter()
                    .filter_map(|m| embedding_of(m.sentence))
                    .collect();
                x.extend(mean_normalised(mentioned.into_iter()));
                x.extend(report_embedding.iter().copied());
                if let Some(block) = &unlabelled {
                    x.extend_from_slice(block);
                }
                x
            })
            .collect()
    }
}

/// Version 2's last block (2 + 384 entries, the same for every
/// observation of a report): see the module's table.
fn unlabelled_block<'a>(
    analysis: &NoteAnalysis,
    embedding_of: &impl Fn(Span) -> Option<&'a Embedding>,
) -> Vec<f64> {
    let about_the_image = |kind: SectionKind| {
        matches!(
            kind,
            SectionKind::Findings | SectionKind::Impression | SectionKind::Preamble
        )
    };
    let section_of = |span: Span| {
        analysis
            .sections
            .iter()
            .find(|s| s.body.contains(span))
            .map(|s| s.kind)
    };
    let sentences: Vec<Span> = analysis
        .sentences
        .iter()
        .copied()
        .filter(|&s| section_of(s).is_some_and(about_the_image))
        .filter(|&s| {
            !analysis
                .mentions
                .iter()
                .any(|m| m.sentence == s && m.counts())
        })
        .collect();
    let old = analysis
        .mentions
        .iter()
        .filter(|m| m.historical && !m.family && about_the_image(m.section))
        .count();
    let mut block = Vec::with_capacity(2 + EMBEDDING_DIM);
    block.push(ln1p_count(sentences.len()));
    block.push(ln1p_count(old));
    block.extend(mean_normalised(
        sentences.iter().filter_map(|&s| embedding_of(s)),
    ));
    block
}

/// `phrase|assertion[|h]`: the phrase lower-cased with its whitespace
/// collapsed, then the assertion and a historical mark.
fn phrase_key(m: &Mention) -> String {
    let phrase = m
        .text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    let assertion = match m.assertion {
        Assertion::Present => "present",
        Assertion::Absent => "absent",
        Assertion::Possible => "possible",
    };
    let past = if m.historical { "|h" } else { "" };
    format!("{phrase}|{assertion}{past}")
}

/// The bucket of `key`: the first 8 bytes of its SHA-256, big-endian, modulo
/// `buckets` (`None` when there are no buckets).
fn bucket(key: &str, buckets: usize) -> Option<usize> {
    let digest = Sha256::digest(key.as_bytes());
    let mut first = [0_u8; 8];
    first.copy_from_slice(&digest[..8]);
    let value = u64::from_be_bytes(first);
    let buckets = u64::try_from(buckets).ok().filter(|&b| b > 0)?;
    usize::try_from(value % buckets).ok()
}

fn one_hot(label: NoteLabel) -> [f64; 4] {
    let mut v = [0.0; 4];
    let k = match label {
        NoteLabel::Positive => 0,
        NoteLabel::Negative => 1,
        NoteLabel::Uncertain => 2,
        NoteLabel::NotMentioned => 3,
    };
    v[k] = 1.0;
    v
}

fn flag(b: bool) -> f64 {
    f64::from(u8::from(b))
}

fn ln1p_count(n: usize) -> f64 {
    // Counts are small; the conversion is exact below 2⁵³.
    (n as f64).ln_1p()
}

/// The mean of unit vectors, L2-normalised; zeros when there are none.
fn mean_normalised<'a>(vectors: impl Iterator<Item = &'a Embedding>) -> Vec<f64> {
    let mut sum = vec![0.0_f64; EMBEDDING_DIM];
    let mut n = 0_usize;
    for v in vectors {
        sum.iter_mut()
            .zip(v.iter())
            .for_each(|(s, x)| *s += f64::from(*x));
        n += 1;
    }
    let norm = sum.iter().map(|x| x * x).sum::<f64>().sqrt();
    if n == 0 || norm == 0.0 {
        return vec![0.0; EMBEDDING_DIM];
    }
    sum.into_iter().map(|x| x / norm).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use fusion_schemas::{Section, TriggerCategory, TriggerHit};
    use std::collections::BTreeMap;

    fn unit(k: usize) -> Embedding {
        let mut e = [0.0_f32; EMBEDDING_DIM];
        e[k] = 1.0;
        e
    }

    /// "FINDINGS: No effusion. IMPRESSION: Small nodule." by hand.
    fn analysis() -> NoteAnalysis {
        let findings = Span::new(10, 23);
        let impression = Span::new(36, 49);
        let mut labels: BTreeMap<Observation, NoteLabel> = Observation::ALL
            .iter()
            .map(|&o| (o, NoteLabel::NotMentioned))
            .collect();
        labels.insert(Observation::PleuralEffusion, NoteLabel::Negative);
        labels.insert(Observation::LungLesion, NoteLabel::Positive);
        let mention = |o, span: Span, text: &str, assertion, section, sentence| Mention {
            observation: o,
            span,
            text: text.to_owned(),
            assertion,
            historical: false,
            hypothetical: false,
            family: false,
            section,
            sentence,
            trigger: (assertion == Assertion::Absent).then(|| TriggerHit {
                text: "No".to_owned(),
                span: Span::new(10, 12),
                category: TriggerCategory::Negation,
            }),
        };
        NoteAnalysis {
            sections: vec![
                Section {
                    kind: SectionKind::Findings,
                    header: Some(Span::new(0, 9)),
                    body: Span::new(9, 24),
                },
                Section {
                    kind: SectionKind::Impression,
                    header: Some(Span::new(24, 35)),
                    body: Span::new(35, 49),
                },
            ],
            sentences: vec![findings, impression],
            mentions: vec![
                mention(
                    Observation::PleuralEffusion,
                    Span::new(13, 21),
                    "effusion",
                    Assertion::Absent,
                    SectionKind::Findings,
                    findings,
                ),
                mention(
                    Observation::LungLesion,
                    Span::new(42, 48),
                    "nodule",
                    Assertion::Present,
                    SectionKind::Impression,
                    impression,
                ),
            ],
            labels,
        }
    }

    #[test]
    fn layout_by_hand() {
        let spec = FeatureSpec {
            version: 1,
            hash_buckets: 128,
        };
        let emb = [Some(unit(0)), Some(unit(1))];
        let x = spec.features(
            &analysis(),
            &emb,
            &[Observation::PleuralEffusion, Observation::Pneumothorax],
        );
        assert_eq!(x.len(), 2);
        let (e, p) = (&x[0], &x[1]);
        assert_eq!(e.len(), spec.width());
        assert_eq!(&e[0..4], &[0.0, 1.0, 0.0, 0.0]);
        assert_eq!(&e[4..7], &[0.0, 2.0_f64.ln(), 0.0]);
        assert_eq!(&e[7..12], &[0.0, 0.0, 0.0, 1.0, 0.0]);
        // Lung lesion (4th observation) positive, effusion (11th) negative.
        assert_eq!(&e[12 + 3 * 3..12 + 3 * 4], &[1.0, 0.0, 0.0]);
        assert_eq!(&e[12 + 3 * 10..12 + 3 * 11], &[0.0, 1.0, 0.0]);
        let hashed = &e[54..54 + 128];
        assert_eq!(hashed.iter().filter(|&&v| v > 0.0).count(), 1);
        let k = bucket("effusion|absent", 128).unwrap();
        assert_eq!(hashed[k], 2.0_f64.ln());
        let mention_emb = &e[54 + 128..54 + 128 + 384];
        assert_eq!(mention_emb[0], 1.0);
        let report_emb = &e[54 + 128 + 384..];
        assert_eq!(report_emb[1], 1.0, "the impression's sentence");
        // Not mentioned: label one-hot last slot, no mention features.
        assert_eq!(&p[0..4], &[0.0, 0.0, 0.0, 1.0]);
        assert!(p[54..54 + 128 + 384].iter().all(|&v| v == 0.0));
        assert_eq!(&p[54 + 128 + 384..], report_emb);
    }

    #[test]
    fn version_2_appends_the_unlabelled_sentences() {
        let spec = FeatureSpec::default();
        assert_eq!(spec.version, 2);
        assert_eq!(spec.width(), 56 + 128 + 3 * 384);
        let emb = [Some(unit(0)), Some(unit(1))];
        let v1 = FeatureSpec { version: 1, ..spec };
        // Both sentences carry a counted mention: no unlabelled sentence.
        let x = spec.features(&analysis(), &emb, &[Observation::NoFinding]);
        let v1_x = v1.features(&analysis(), &emb, &[Observation::NoFinding]);
        assert_eq!(x[0].len(), spec.width());
        assert_eq!(&x[0][..v1.width()], &v1_x[0][..], "version 1 is a prefix");
        assert!(x[0][v1.width()..].iter().all(|&v| v == 0.0));
        // The impression's nodule made old ("old calcified nodule"): that
        // sentence is now unlabelled, and one old mention is counted.
        let mut old = analysis();
        old.mentions[1].historical = true;
        let x = spec.features(&old, &emb, &[Observation::Cardiomegaly]);
        let block = &x[0][v1.width()..];
        assert_eq!(block[0], 2.0_f64.ln(), "one unlabelled sentence");
        assert_eq!(block[1], 2.0_f64.ln(), "one old mention");
        assert_eq!(block[2 + 1], 1.0, "the impression's embedding");
        assert_eq!(block[2..].iter().filter(|&&v| v != 0.0).count(), 1);
        // A sentence in no about-the-image section is never unlabelled.
        let mut indication = old.clone();
        indication.sections[1].kind = SectionKind::Indication;
        indication.mentions[1].section = SectionKind::Indication;
        let x = spec.features(&indication, &emb, &[Observation::Cardiomegaly]);
        assert!(x[0][v1.width()..].iter().all(|&v| v == 0.0));
    }
}
