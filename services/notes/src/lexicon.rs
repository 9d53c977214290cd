//! Observation lexicon for the 14 CheXpert observations (Irvin et al., AAAI
//! 2019), written for this crate from standard radiology terminology, and
//! the target finder that turns it into mention spans.

use std::sync::LazyLock;

use crate::Span;
use crate::phrase::PhraseMatcher;
use crate::token::{Token, tokenize};

pub use fusion_schemas::Observation;

/// What a lexicon phrase says about its observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sense {
    /// The phrase names the observation ("cardiomegaly").
    Names(Observation),
    /// The phrase states the observation is absent ("heart size is normal");
    /// the phrase carries its own negation.
    Denies(Observation),
    /// The phrase hedges the observation itself ("borderline heart size"),
    /// so it needs no separate uncertainty trigger.
    Hedges(Observation),
    /// The phrase names an old or healed form of the observation ("calcified
    /// granuloma"): a mention, but about the past.
    Old(Observation),
    /// The phrase names the structure an observation is about ("heart size",
    /// "mediastinal contours") without a qualifier: it becomes a mention only
    /// when a statement of normality applies to it ("heart size and
    /// mediastinal contours are within normal limits"), which denies the
    /// observation.
    Structure(Observation),
    /// The phrase looks like a target but is not one ("pericardial effusion"):
    /// it exists only to out-match a shorter phrase.
    Blocks,
}

/// Copulas between a structure and its qualifier. A de-identification mask
/// may stand before the copula: the Open-i collection replaces every word
/// its scrubber took for an identifier with `XXXX` ("the heart XXXX is
/// slightly large"); the qualifier after it still says what the sentence
/// states. A mask standing for the verb itself: [`SIZE_MASK`].
const IS: &str = "(is|are|appears|appear|remains|remain|appears to be|is again|are again|is otherwise|are otherwise|xxxx (is|are|appears|appear))";
/// A size noun of the heart with a de-identification mask standing for its
/// verb ("heart size XXXX mildly enlarged", "heart size XXXX at XXXX
/// normal"). Only a size noun: after a bare "heart" the mask may stand for
/// a verb whose subject is something else ("behind the heart XXXX large
/// hiatal hernia").
const SIZE_MASK: &str = "(heart size|cardiac size|cardiac silhouette) xxxx[ at xxxx]";
/// Degree words before a qualifier ("mildly enlarged").
const DEGREE: &str = "[(slightly|mildly|moderately|markedly|severely|massively|stably|minimally) ]";
/// Adverbs between a copula and its qualifier ("is again enlarged").
const ADV: &str = "[(again|persistently|still|now|stably|grossly|also) ]";
const HEART: &str = "(heart|heart size|cardiac silhouette|cardiac size|cardiac contour|cardiac shadow|cardiac contours)";
const MEDIASTINUM: &str = "(mediastinum|cardiomediastinum|cardiomediastinal silhouette|mediastinal silhouette|mediastinal contour[s]|cardiomediastinal contour[s]|hilar contours|mediastinal and hilar contours|cardiomediastinal and hilar contours)";
const NORMAL: &str = "(normal|unremarkable|within normal limits|within limits of normal|normal in size|stable and normal|top normal|top-normal|upper limits of normal|not enlarged|normal size)";

fn entries() -> Vec<(Sense, String)> {
    use Observation::*;
    use Sense::{Blocks, Denies, Hedges, Names, Old, Structure};
    let mut e: Vec<(Sense, String)> = Vec::new();
    let mut add = |sense: Sense, pattern: &str| e.push((sense, pattern.to_owned()));

    add(
        Names(NoFinding),
        "no acute (cardiopulmonary|intrathoracic|chest|pulmonary|cardiac or pulmonary) (process|processes|abnormality|abnormalities|disease|findings|finding|pathology)",
    );
    add(
        Names(NoFinding),
        "no (acute|active) (disease|process|findings|abnormality)|no radiographic evidence of acute [cardiopulmonary ](disease|process)",
    );
    add(
        Names(NoFinding),
        "normal (chest|chest radiograph|chest x-ray|chest film|radiograph|study|examination|exam)|unremarkable (chest|chest radiograph|chest x-ray|study|examination|exam)",
    );
    add(
        Names(NoFinding),
        "(lungs|lung fields|the lungs) [{IS}] [otherwise ][(grossly|essentially|well expanded and|expanded and|normally inflated and|well-expanded and|hyperexpanded but|hyperinflated but) ]clear|clear lungs|(lungs|lung fields) (are|appear) (normal|unremarkable)|(normal|unremarkable) (lungs|lung fields)|no (active|acute) (lung|pulmonary) disease",
    );

    add(
        Names(EnlargedCardiomediastinum),
        "(enlarged|widened|widening of the|enlargement of the) {MED}",
    );
    add(
        Names(EnlargedCardiomediastinum),
        "{MED} {IS} {DEGREE}(widened|enlarged|prominent|wide)|mediastinal (widening|enlargement|prominence)|widened mediastinal silhouette",
    );
    add(
        Denies(EnlargedCardiomediastinum),
        "(normal|unremarkable|stable normal|normal-appearing|normal appearing) {MED}|{MED} {IS} {NORMAL}",
    );
    add(
        Denies(EnlargedCardiomediastinum),
        "{MED} (within normal limits|are normal|is normal|not widened|is not widened|are not widened)",
    );

    add(
        Names(Cardiomegaly),
        "cardiomegaly|cardiac (enlargement|prominence)|cardiomegalic|enlarged {HEART}|(enlargement|prominence) of the {HEART}|(heart|cardiac silhouette|cardiac contour|cardiac shadow) enlargement",
    );
    add(
        Names(Cardiomegaly),
        "{HEART} [{IS}] {ADV}{DEGREE}(enlarged|prominent|large|increased)|(enlarged|large|increased|prominent) (heart|heart size|cardiac silhouette)|[interval ]increase[d] in {HEART}",
    );
    add(
        Hedges(Cardiomegaly),
        "{HEART} [{IS}] {ADV}borderline[ (enlarged|in size|large)]|borderline (heart size|heart|cardiac size|cardiac silhouette|enlarged heart|enlargement of the heart)|{HEART} [{IS}] {ADV}[at ][the ](upper limits normal|upper limits of normal|upper limit of normal|upper normal|top normal|top-normal|normal) or {DEGREE}(enlarged|large)",
    );
    add(
        Denies(Cardiomegaly),
        "(normal|unremarkable|stable normal) {HEART}|{HEART} [{IS}] {NORMAL}|{HEART} (is|are|appears|remains) (normal|unremarkable|within normal limits|not enlarged)",
    );
    add(
        Names(Cardiomegaly),
        "{SIZE_MASK} {DEGREE}(enlarged|prominent|large|increased)",
    );
    add(
        Hedges(Cardiomegaly),
        "{SIZE_MASK} borderline[ (enlarged|in size|large)]",
    );
    add(Denies(Cardiomegaly), "{SIZE_MASK} {NORMAL}");

    add(
        Names(LungLesion),
        "nodule[s]|nodular (opacity|opacities|density|densities|lesion|lesions)|masslike (opacity|opacities|density|densities|lesion|lesions)|mass|masses|mass lesion[s]|lesion[s]|tumor[s]|tumour[s]|neoplasm[s]|malignancy|carcinoma|cancer|metastasis|metastases|metastatic disease|cavitary lesion[s]|(pulmonary|lung) (nodule|nodules|mass|masses|lesion|lesions)",
    );
    add(
        Old(LungLesion),
        "[(calcified|noncalcified|non-calcified|small|tiny|stable) ]granuloma[s]|granulomatous (disease|process|change|changes|sequela|sequelae|infection|exposure)",
    );
    add(
        Names(LungOpacity),
        "opacity|opacities|opacification[s]|opacified|infiltrate[s]|infiltration[s]|infiltrative process|density|densities|(airspace|air space|air-space|parenchymal) (disease|process|opacity|opacities|opacification)|haziness|hazy (opacity|opacities|opacification)|ground[-| ]glass[ (opacity|opacities|opacification)]|reticular (opacity|opacities|markings)|interstitial (markings|opacity|opacities|prominence|thickening|disease)|increased (markings|interstitial markings|lung markings|density)|scarring",
    );
    add(
        Names(Edema),
        "edema|oedema|(pulmonary|interstitial|alveolar|perihilar|airspace|mild pulmonary|frank pulmonary) edema|[pulmonary ]vascular (congestion|engorgement|redistribution|prominence)|pulmonary (congestion|venous congestion|venous hypertension)|congestive (heart failure|failure)|chf|fluid overload|volume overload|cephalization|kerley b lines|congestion",
    );
    add(
        Names(Consolidation),
        "consolidation[s]|consolidative[ (opacity|opacities|process|change|changes)]|consolidated|airspace consolidation|(lobar|focal) consolidation",
    );
    add(
        Names(Pneumonia),
        "pneumonia[s]|bronchopneumonia|pneumonitis|pneumonic|infection[s]|infectious process|aspiration|aspiration pneumonia|(multifocal|lobar|atypical) pneumonia",
    );
    add(
        Names(Atelectasis),
        "atelectasis|atelectases|atelectatic[ (change|changes|opacity|opacities)]|collapse|collapsed (lung|lobe|segment)|(lobar|segmental|subsegmental|basilar|bibasilar|bibasal|plate-like|platelike|plate like|discoid|linear|dependent|compressive|passive) atelectasis|volume loss",
    );
    add(
        Names(Pneumothorax),
        "pneumothorax|pneumothoraces|pneumothoraxes|ptx|hydropneumothorax|(apical|tension|basilar|small|tiny) pneumothorax",
    );
    add(
        Names(PleuralEffusion),
        "effusion[s]|pleural effusion[s]|pleural fluid|hydrothorax|hemothorax|fluid in the pleural space|blunting of the [(left|right|bilateral) ]costophrenic (angle|angles|sulcus|sulci)|[(left|right) ]costophrenic angle blunting|layering fluid|(subpulmonic|loculated|parapneumonic) effusion[s]",
    );
    add(
        Blocks,
        "(pericardial|joint|knee|elbow|ankle|hip|shoulder|middle ear|subdural) effusion[s]|(pericardial|joint) fluid|(peripheral|pedal|leg|lower extremity|extremity|ankle|facial|cerebral|bowel wall|soft tissue|scalp|macular) edema|urinary tract infection|wound infection|skin infection|(soft tissue|adrenal|liver|renal|hepatic|breast|neck|abdominal|pelvic|brain|skin) (mass|masses|lesion|lesions|nodule|nodules)|(bone|bony|osseous|skeletal|rib|vertebral|spinal|humeral|clavicular|sternal|lytic|blastic|sclerotic|lucent|expansile|destructive|mediastinal|anterior mediastinal|pericardial|chest wall) (mass|masses|lesion|lesions)|(lesion|lesions|mass|masses) (of|in) the [(left|right|anterior|posterior) ](rib|ribs|humerus|humeral head|clavicle|scapula|sternum|spine|vertebral body|mediastinum)|breast cancer|mass effect|bone density|nasal congestion|sinus congestion|pleural fluid analysis",
    );
    add(
        Names(PleuralOther),
        "pleural (thickening|scarring|plaque|plaques|calcification|calcifications|reaction|abnormality|disease)|fibrothorax|pleural-based (opacity|thickening)|pleural based (opacity|thickening)|apical [pleural ](cap|capping|thickening)|[calcified ]pleural plaques|(fissural|interlobar fissural|fissure) thickening|thickening of the (fissure|fissures|minor fissure|major fissure)",
    );
    // Normality stated after a named finding ("pulmonary vascular engorgement
    // appears within limits of normal"): the phrase denies it.
    add(
        Denies(Edema),
        "[(pulmonary|central|central pulmonary) ]vascular (congestion|engorgement|prominence) {IS} {NORMAL}",
    );
    add(
        Structure(Cardiomegaly),
        "{HEART}|heart and (great vessels|mediastinum)",
    );
    add(
        Structure(EnlargedCardiomediastinum),
        "{MED}|mediastinal (width|contour|contours|silhouette)",
    );
    add(
        Structure(Edema),
        "pulmonary (vascularity|vasculature|vessels|vascular markings)|vascularity|vasculature",
    );
    add(
        Names(Fracture),
        "fracture[s]|fractured|fx|(rib|clavicle|clavicular|vertebral|compression|humeral|sternal|scapular) (fracture|fractures|fx)|(healing|healed|displaced|nondisplaced|non-displaced) (fracture|fractures|rib fracture|rib fractures)",
    );
    add(
        Names(SupportDevices),
        "(endotracheal|tracheostomy|et|ng|og|nasogastric|orogastric|feeding|chest|enteric|dobhoff|dobbhoff|gastric|nasoenteric|thoracostomy) tube[s]|ett|tracheostomy|trach|picc|picc line|(central|central venous|internal jugular|ij|subclavian|venous|dialysis|hemodialysis|swan-ganz|swan ganz|pulmonary artery|arterial) (line|lines|catheter|catheters)|swan-ganz|pacemaker|pacer|aicd|icd|defibrillator|(pacing|pacer|pacemaker) (wire|wires|lead|leads)|(sternotomy|sternal) wires|catheter[s]|port|port-a-cath|portacath|(mediport|infusion port)|drain[s]|stent[s]|(prosthetic|mechanical) valve|valve replacement|lvad|[intra-aortic ]balloon pump|iabp|[surgical ]clips|hardware|orthopedic hardware|(ecmo|impella)[ cannula]",
    );

    e.into_iter()
        .map(|(sense, p)| {
            let p = p
                .replace("{MED}", MEDIASTINUM)
                .replace("{SIZE_MASK}", SIZE_MASK)
                .replace("{HEART}", HEART)
                .replace("{IS}", IS)
                .replace("{NORMAL}", NORMAL)
                .replace("{DEGREE}", DEGREE)
                .replace("{ADV}", ADV);
            (sense, p)
        })
        .collect()
}

static LEXICON: LazyLock<PhraseMatcher<Sense>> = LazyLock::new(|| {
    let mut m = PhraseMatcher::new();
    // Earlier entries win when one spelling appears twice, so blockers and
    // specific phrases are added in the order listed.
    for (sense, pattern) in entries() {
        m.add(&pattern, sense);
    }
    m
});

/// One observation phrase found in text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObservationMatch {
    /// The observation named.
    pub observation: Observation,
    /// Byte span of the phrase.
    pub span: Span,
    /// What the phrase says about the observation.
    pub kind: MatchKind,
}

/// What a matched phrase says about its observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    /// It names the observation ("cardiomegaly"); context decides.
    Names,
    /// It denies the observation itself ("heart size is normal"), so it
    /// needs no separate negation trigger.
    Denies,
    /// It hedges the observation itself ("borderline heart size"), so it
    /// needs no separate uncertainty trigger.
    Hedges,
    /// It names an old or healed form ("calcified granuloma"): historical.
    Old,
    /// It names only the structure ("heart size"): a mention only when a
    /// statement of normality applies, which then denies the observation.
    Structure,
}

/// Finds observation phrases in `text`: case-insensitive, on word
/// boundaries, longest match first, non-overlapping. Spans are byte offsets
/// into `text`.
#[must_use]
pub fn find_observations(text: &str) -> Vec<ObservationMatch> {
    find_in_tokens(&tokenize(text, 0))
}

pub(crate) fn find_in_tokens(tokens: &[Token]) -> Vec<ObservationMatch> {
    LEXICON
        .scan(tokens)
        .into_iter()
        .filter_map(|(range, sense)| {
            let span = Span::new(
                tokens[range.start].span.start,
                tokens[range.end - 1].span.end,
            );
            match *sense {
                Sense::Names(observation) => Some(ObservationMatch {
                    observation,
                    span,
                    kind: MatchKind::Names,
                }),
                Sense::Denies(observation) => Some(ObservationMatch {
                    observation,
                    span,
                    kind: MatchKind::Denies,
                }),
                Sense::Hedges(observation) => Some(ObservationMatch {
                    observation,
                    span,
                    kind: MatchKind::Hedges,
                }),
                Sense::Old(observation) => Some(ObservationMatch {
                    observation,
                    span,
                    kind: MatchKind::Old,
                }),
                Sense::Structure(observation) => Some(ObservationMatch {
                    observation,
                    span,
                    kind: MatchKind::Structure,
                }),
                Sense::Blocks => None,
            }
        })
        .collect()
}

/// Finds a given concept in `text` for the general (NegEx kit) mode: the
/// first occurrence of `concept`'s words in order, compared
/// case-insensitively with any amount of whitespace between them. Returns
/// the byte span of the occurrence, or `None` when it is absent. Pass the
/// span to [`assess`](crate::assess) to get its context.
#[must_use]
pub fn find_concept(text: &str, concept: &str) -> Option<Span> {
    concept_occurrences(text, concept).into_iter().next()
}

/// Every word-aligned occurrence of `concept` in `text`, in order.
pub(crate) fn concept_occurrences(text: &str, concept: &str) -> Vec<Span> {
    let wanted: Vec<String> = tokenize(concept, 0).into_iter().map(|t| t.norm).collect();
    if wanted.is_empty() {
        return Vec::new();
    }
    tokenize(text, 0)
        .windows(wanted.len())
        .filter(|w| w.iter().zip(&wanted).all(|(t, n)| t.norm == *n))
        .map(|w| Span::new(w[0].span.start, w[w.len() - 1].span.end))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(Observation, &str, bool)> {
        find_observations(text)
            .into_iter()
            .map(|m| {
                (
                    m.observation,
                    &text[m.span.start..m.span.end],
                    m.kind == MatchKind::Denies,
                )
            })
            .collect()
    }

    #[test]
    fn synonyms_and_inflections() {
        use Observation::*;
        assert_eq!(
            found("Bilateral EFFUSIONS, pleural fluid and a hydrothorax; pneumothoraces."),
            [
                (PleuralEffusion, "EFFUSIONS", false),
                (PleuralEffusion, "pleural fluid", false),
                (PleuralEffusion, "hydrothorax", false),
                (Pneumothorax, "pneumothoraces", false),
            ]
        );
        assert_eq!(
            found("The heart size is enlarged. Enlarged heart. ETT and NG tube in place."),
            [
                (Cardiomegaly, "heart size is enlarged", false),
                (Cardiomegaly, "Enlarged heart", false),
                (SupportDevices, "ETT", false),
                (SupportDevices, "NG tube", false),
            ]
        );
    }

    #[test]
    fn heart_enlargement_and_normal_or_enlarged() {
        use Observation::*;
        assert_eq!(
            found("Stable mild heart enlargement."),
            [(Cardiomegaly, "heart enlargement", false)]
        );
        // "normal or enlarged" is a hedge, not a statement of normality.
        let text = "Heart size is upper limits of normal or mildly enlarged.";
        let m = find_observations(text);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].kind, MatchKind::Hedges);
        assert_eq!(
            &text[m[0].span.start..m[0].span.end],
            "Heart size is upper limits of normal or mildly enlarged"
        );
        assert_eq!(
            found("Heart size is upper limits of normal."),
            [(Cardiomegaly, "Heart size is upper limits of normal", true)]
        );
    }

    #[test]
    fn a_deidentification_mask_in_the_copula_slot() {
        use Observation::*;
        assert_eq!(
            found("Heart size XXXX mildly enlarged."),
            [(Cardiomegaly, "Heart size XXXX mildly enlarged", false)]
        );
        assert_eq!(
            found("The heart XXXX is slightly large."),
            [(Cardiomegaly, "heart XXXX is slightly large", false)]
        );
        assert_eq!(
            found("Heart size XXXX at XXXX normal."),
            [(Cardiomegaly, "Heart size XXXX at XXXX normal", true)]
        );
        let text = "Heart size XXXX borderline enlarged.";
        let m = find_observations(text);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].kind, MatchKind::Hedges);
        // After a bare "heart" the mask may stand for a verb of another
        // subject: no Cardiomegaly mention, the structure alone.
        for text in [
            "Behind the heart XXXX large hiatal hernia.",
            "Heart XXXX enlarged pulmonary arteries.",
        ] {
            let m = find_observations(text);
            assert!(
                m.iter().all(|m| m.kind == MatchKind::Structure),
                "{text}: {m:?}"
            );
        }
        // A mask with no qualifier after it states nothing: the structure
        // alone, which becomes no mention.
        let m = find_observations("Heart XXXX.");
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].kind, MatchKind::Structure);
    }

    #[test]
    fn normality_stated_after_a_named_finding() {
        use Observation::*;
        assert_eq!(
            found("Central vascular congestion is within normal limits."),
            [(
                Edema,
                "Central vascular congestion is within normal limits",
                true
            )]
        );
        assert_eq!(
            found("Mild central vascular congestion."),
            [(Edema, "vascular congestion", false)]
        );
    }

    #[test]
    fn a_lesion_of_bone_or_mediastinum_is_not_a_lung_lesion() {
        use Observation::*;
        // CheXpert's Lung Lesion is a lesion of the lung parenchyma: a bone,
        // mediastinal or pericardial mass is not one.
        assert_eq!(
            found("Lytic lesion of the left humeral head. Anterior mediastinal mass."),
            []
        );
        assert_eq!(found("Expansile lesion of the posterior rib."), []);
        assert_eq!(
            found("Lucent lesion in the right humeral head; right upper lobe mass."),
            [(LungLesion, "mass", false)]
        );
    }

    #[test]
    fn a_masslike_opacity_is_a_lesion() {
        use Observation::*;
        assert_eq!(
            found("Right upper lobe masslike opacity."),
            [(LungLesion, "masslike opacity", false)]
        );
    }

    #[test]
    fn longest_match_and_blockers() {
        use Observation::*;
        assert_eq!(
            found("Small pericardial effusion. Left lower lobe consolidative opacity."),
            [(Consolidation, "consolidative opacity", false)]
        );
        assert_eq!(
            found("Heart size is normal."),
            [(Cardiomegaly, "Heart size is normal", true)]
        );
    }

    #[test]
    fn concept_spans_multiple_spaces() {
        let text = "No change in  weight reported.";
        assert_eq!(
            find_concept(text, "change in weight"),
            Some(Span::new(3, 20))
        );
        assert_eq!(find_concept(text, "weight loss"), None);
    }
}
