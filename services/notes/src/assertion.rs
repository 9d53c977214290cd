//! Assertion status of a target concept within its sentence, after ConText
//! (Harkema et al., J Biomed Inform 2009), which extends NegEx (Chapman et
//! al., J Biomed Inform 2001). The trigger lists and the algorithm here were
//! written for this crate.
//!
//! A trigger phrase opens a scope in its direction (forward, backward or
//! both); the scope ends at the sentence end, at a termination term ("but",
//! "however", ...), at a trigger of a rival category (negation and
//! uncertainty end each other's scope), or after a maximum number of words.
//! Pseudo-triggers ("no change", "gram negative") match first so that the
//! trigger words inside them do nothing.

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use crate::Span;
use crate::phrase::PhraseMatcher;
use crate::token::{Token, tokenize};

pub use fusion_schemas::note::{Assertion, TriggerCategory, TriggerHit};

/// The context of one target concept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// Present, absent or possible.
    pub assertion: Assertion,
    /// A historical trigger applies.
    pub historical: bool,
    /// A hypothetical trigger applies.
    pub hypothetical: bool,
    /// An experiencer-other (family) trigger applies.
    pub family: bool,
    /// The trigger that decided `assertion` when it is not `Present`;
    /// otherwise the first historical, hypothetical or family trigger, if any.
    pub trigger: Option<TriggerHit>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Forward,
    Backward,
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Trigger(TriggerCategory, Direction),
    /// Looks like a trigger but is not one; matched only to mask its words.
    Pseudo,
    /// Ends any scope that would cross it.
    Terminate,
    /// A verb of suggestion: a forward uncertainty trigger that a negation
    /// before it carries through ("no opacity to suggest pneumonia").
    Suggest,
}

/// Maximum words between a trigger and its target.
const MAX_WINDOW_WORDS: usize = 12;

const NEGATION_FORWARD: &str = "no|not|without|w/o|nor|neither|never|denies|denied|deny|denying|denial of|negative for|-ve for|neg for|free of|clear of|no (evidence|sign|signs|findings|finding|suggestion|indication)[ (of|for|to suggest|suggesting|suggestive of|to indicate)]|(low|very low) (suspicion|likelihood|probability) (for|of)|no suspicious|no radiographic evidence of|without [any ](evidence|signs|sign) of|no further|no new|no longer|rules out|ruled him out for|ruled her out for|absence of|resolution of|never had|never developed|no complaints of|(fails|failed|did not|does not|didn't|doesn't) [to ](reveal|show|demonstrate)|(does|did|do) not (have|exhibit|complain of)|doesn't have|didn't have|isn't|wasn't|aren't|weren't|hasn't|haven't|unremarkable for|rather than|with no";
const NEGATION_BACKWARD: &str = "(is|are|was|were|been|has been|have been) (ruled out|negative|absent)|(not|isn't|aren't|wasn't|weren't) (seen|identified|visualized|appreciated|present|demonstrated|evident|noted|detected|found|observed|visible|apparent|elicited)|(has|have) (resolved|cleared)|cleared|[- ]free";
const NEGATION_BOTH: &str = "ruled out|absent|resolved|unlikely|none";
const POSSIBLE_FORWARD: &str = "possible|possibly|probable|probably|questionable|question of|suspect|suspicion (of|for)|concern for|(may|might|could|can) (be|represent|reflect|have)|may|might|could|cannot (exclude|rule out)|can not (exclude|rule out)|can't (exclude|rule out)|not (rule out|exclude)|likely|most likely|more likely|presumably|presumed|presumptive|differential [diagnosis ](includes|include|including|of)|differential considerations include|ddx|borderline|equivocal|indeterminate|uncertain|not certain (if|whether)|unclear (if|whether)|not clear (if|whether)|whether or not|either|perhaps|maybe|raises the possibility of|possibility of|consider|considered|consideration of";
/// Verbs of suggestion: hedges that a negation before them carries through
/// ("no focal opacity to suggest pneumonia": pneumonia is absent).
const SUGGESTION_FORWARD: &str = "suggestive of|suggests|suggesting|suggest|to suggest|suspicious (for|of)|concerning for|worrisome for|to indicate|indicating|indicative of";
const POSSIBLE_BACKWARD: &str = "(is|are|was|were) (possible|likely|questioned|suspected|considered|favored|suggested|not excluded)|(is|are|was|were) [also ](a possibility|possible|a consideration|a differential consideration)|(remains|remain) a (possibility|consideration)|(is|are|would be|could be|may be|might be|should be) [(also|another) ](in|within) the differential[ diagnosis]|in the differential[ diagnosis]|(would|could|should|may|might) [also ]be [a ](consideration|considerations|considered)|(cannot|can not|can't|could not|couldn't) be [(completely|entirely|totally|definitely|fully) ](excluded|ruled out)|not [been ][(completely|entirely|totally|definitely) ](excluded|ruled out)|or not|?";
const POSSIBLE_BOTH: &str = "versus|vs|suspected";
const HISTORICAL_FORWARD: &str = "history of|hx of|h/o|hx|status post|s/p|previous|previously|prior|prior history of|past history of|remote history of|known history of|history significant for|past medical history|pmh|psh|old|healed|remote|residua of|residuum of|residual of|residuals of|sequela of|sequelae of|evidence of (prior|previous|old)|postinflammatory|post-inflammatory";
const HISTORICAL_BACKWARD: &str = "in the past|(years|months|weeks) ago|as a child|in childhood|(from|of|related to|due to|secondary to|consistent with|compatible with) [(a|the) ](prior|previous|old|remote|healed)|(is|are|appears|appear) (old|healed|remote)";
const HYPOTHETICAL_FORWARD: &str = "if|in case|in the event of|should (he|she|the patient|there be)|return if|call if|as needed|prn|watch for|monitor for";
/// Requests and recommendations: what they name is asked about, not found
/// ("correlate clinically for pneumonia", "to rule out effusion").
const REQUEST_FORWARD: &str = "rule out|r/o|to rule out|to exclude|(evaluate|evaluation|eval|assess|assessment|check|screen|screening|search|look) for|to (evaluate|assess) for|limits evaluation (for|of)|limited evaluation (for|of)|(clinical|clinically) (correlation|correlate) for|correlate [clinically ]for|correlation for|(recommend|recommended|recommending|suggest|suggested) [(a|an|the) ](follow-up|followup|follow up|ct|chest ct|repeat|repeat radiograph|repeat radiographs|further evaluation|evaluation|imaging|comparison) [(to exclude|to evaluate|to evaluate for|to assess for|for|of|to rule out|to document resolution of)]|(follow-up|followup|follow up) [(radiograph|radiographs|imaging|study|exam|ct)] (to exclude|to evaluate|to document resolution of|for)|(if|when) clinically (indicated|warranted)";
const FAMILY_FORWARD: &str = "family history of|family history|fh of|fhx of|mother|mother's|father|father's|sister|brother|son|daughter|aunt|uncle|grandmother|grandfather|grandparent[s]|cousin|sibling[s]|parent[s]|maternal|paternal|family member[s]";
const PSEUDO: &str = "no [(significant |interval |definite |apparent |further |suspicious |new |substantial )](change|changes|increase|decrease)|not [significantly ](changed|increased|decreased)|without [(significant |interval )]change|not only|not necessarily|not cause|not drain|not extend|gram[-] negative|without difficulty|(previous|prior) (study|studies|exam|exams|examination|examinations|film|films|radiograph|radiographs|imaging|ct|cxr|comparison|report)|compared (to|with) [the ](previous|prior)|history and physical|history taking|social history|history of present illness|if any|as if|even if|as needed for";
const TERMINATION: &str = "but|however|although|though|aside from|except|which|apart from|yet|nevertheless|nonetheless|still|other than|besides|whereas|as (the|a) (cause|source|etiology|reason) (of|for)|(cause|causes|etiology|source|origin|reason) (of|for)|secondary to|presents|presenting|presented|complains|complaining|complained|positive for|(diagnosis|explanation) for|there (is|are|was|were|has been|have been)|:|;";

static TRIGGERS: LazyLock<PhraseMatcher<Role>> = LazyLock::new(|| {
    use Direction::{Backward, Both, Forward};
    use TriggerCategory::{Family, Historical, Hypothetical, Negation, Possible};
    let mut m = PhraseMatcher::new();
    // Pseudo-triggers and termination terms go first so a trigger list can
    // never claim their spelling.
    m.add(PSEUDO, Role::Pseudo);
    m.add(TERMINATION, Role::Terminate);
    for (patterns, category, direction) in [
        (NEGATION_BOTH, Negation, Both),
        (NEGATION_BACKWARD, Negation, Backward),
        (NEGATION_FORWARD, Negation, Forward),
        (POSSIBLE_BOTH, Possible, Both),
        (POSSIBLE_BACKWARD, Possible, Backward),
        (POSSIBLE_FORWARD, Possible, Forward),
        (HISTORICAL_BACKWARD, Historical, Backward),
        (HISTORICAL_FORWARD, Historical, Forward),
        (HYPOTHETICAL_FORWARD, Hypothetical, Forward),
        (REQUEST_FORWARD, Hypothetical, Forward),
        (FAMILY_FORWARD, Family, Forward),
    ] {
        m.add(patterns, Role::Trigger(category, direction));
    }
    m.add(SUGGESTION_FORWARD, Role::Suggest);
    m
});

/// Whether a trigger of `other` category ends the scope of a `scope` one.
/// Negation and uncertainty compete for the same slot, so each ends the
/// other; temporal and experiencer triggers end only their own rivals.
fn ends_scope(scope: TriggerCategory, other: TriggerCategory) -> bool {
    use TriggerCategory::{Family, Historical, Hypothetical, Negation, Possible};
    matches!(
        (scope, other),
        (Negation, Possible)
            | (Possible, Negation)
            | (Historical, Hypothetical)
            | (Hypothetical, Historical)
            | (Family, Negation | Possible)
    )
}

/// A trigger found on one side of a target, with its token range.
struct Found {
    start: usize,
    end: usize,
    role: Role,
}

/// A trigger whose scope reaches the target.
struct Applying {
    /// Tokens between trigger and target.
    distance: usize,
    /// Token range of the trigger.
    start: usize,
    end: usize,
    category: TriggerCategory,
}

/// Context of each target inside one sentence of `text`. `sentence` and each
/// target are byte spans into `text`; targets should lie inside `sentence`
/// (parts outside it are ignored). Returns one [`Context`] per target, in
/// order. A target covering no word is `Present` with no trigger.
#[must_use]
pub fn assess(text: &str, sentence: Span, targets: &[Span]) -> Vec<Context> {
    let Some(sentence_text) = sentence.slice(text) else {
        return targets.iter().map(|_| Context::default()).collect();
    };
    let tokens = tokenize(sentence_text, sentence.start);
    targets
        .iter()
        .map(|&target| assess_one(text, &tokens, target))
        .collect()
}

fn assess_one(text: &str, tokens: &[Token], target: Span) -> Context {
    let first = tokens.iter().position(|t| t.span.end > target.start);
    let last = tokens.iter().rposition(|t| t.span.start < target.end);
    let (Some(ts), Some(te)) = (first, last.map(|l| l + 1)) else {
        return Context::default();
    };
    if ts >= te {
        return Context::default();
    }
    // Triggers are matched on each side separately so none can swallow the
    // target's own words.
    let before = found(&tokens[..ts], 0);
    let after = found(&tokens[te..], te);

    let mut applying = Vec::new();
    for (k, f) in before.iter().enumerate() {
        let category = match f.role {
            Role::Trigger(category, Direction::Forward | Direction::Both) => category,
            Role::Suggest => TriggerCategory::Possible,
            _ => continue,
        };
        let between = &before[k + 1..];
        if in_scope(category, between, &tokens[f.end..ts], Direction::Forward) {
            // A negation that reaches a verb of suggestion carries through it:
            // "no opacity to suggest pneumonia" denies the pneumonia.
            let carried = (f.role == Role::Suggest)
                .then(|| negation_reaching(&before[..k], tokens, f.start))
                .flatten();
            let (start, end, category) = match carried {
                Some(n) => (n.start, n.end, TriggerCategory::Negation),
                None => (f.start, f.end, category),
            };
            applying.push(Applying {
                distance: ts - f.end,
                start,
                end,
                category,
            });
        }
    }
    for (k, f) in after.iter().enumerate() {
        if let Role::Trigger(category, Direction::Backward | Direction::Both) = f.role {
            let between = &after[..k];
            if in_scope(category, between, &tokens[te..f.start], Direction::Backward) {
                applying.push(Applying {
                    distance: f.start - te,
                    start: f.start,
                    end: f.end,
                    category,
                });
            }
        }
    }

    // The nearest negation or uncertainty trigger decides the assertion.
    let decisive = applying
        .iter()
        .filter(|a| {
            matches!(
                a.category,
                TriggerCategory::Negation | TriggerCategory::Possible
            )
        })
        .min_by_key(|a| a.distance);
    let assertion = match decisive.map(|a| a.category) {
        Some(TriggerCategory::Negation) => Assertion::Absent,
        Some(_) => Assertion::Possible,
        None => Assertion::Present,
    };
    let trigger = decisive
        .or_else(|| applying.iter().min_by_key(|a| a.distance))
        .map(|a| {
            let span = Span::new(tokens[a.start].span.start, tokens[a.end - 1].span.end);
            TriggerHit {
                text: span.slice(text).unwrap_or_default().to_owned(),
                span,
                category: a.category,
            }
        });
    let has = |c: TriggerCategory| applying.iter().any(|a| a.category == c);
    Context {
        assertion,
        historical: has(TriggerCategory::Historical),
        hypothetical: has(TriggerCategory::Hypothetical),
        family: has(TriggerCategory::Family),
        trigger,
    }
}

/// Statements of normality about a structure: after it ("heart size and
/// mediastinal contours are within normal limits", "heart size normal") or
/// right before it ("normal heart size and mediastinum").
const NORMAL_AFTER: &str = "normal|within normal limits|within limits of normal|unremarkable|clear|stable and normal|grossly normal|not enlarged|not widened|normal in (size|caliber|width|contour|configuration|appearance)|normal in size and (contour|configuration|appearance)|normal for (age|size)|within normal limits for (size|size and contour|appearance|patient age)|(are|is) (normal|unremarkable|clear)";
const NORMAL_BEFORE: &str = "normal|unremarkable|stable normal|normal-appearing|normal appearing";
/// Words that state an abnormality; a normality statement does not reach a
/// structure across one.
const ABNORMAL: &str = "enlarged|enlargement|prominent|prominence|increased|increase|large|widened|widening|abnormal|engorged|congested|congestion|tortuous|borderline|cephalization|indistinct|not (normal|clear)";

/// What the normality matcher finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Normality {
    After,
    Before,
    Abnormal,
}

static NORMALITY: LazyLock<PhraseMatcher<Normality>> = LazyLock::new(|| {
    let mut m = PhraseMatcher::new();
    m.add(ABNORMAL, Normality::Abnormal);
    m.add(NORMAL_AFTER, Normality::After);
    m.add(NORMAL_BEFORE, Normality::Before);
    m
});

/// Longest gap, in words, between a structure and a normality statement
/// after it (room for a coordinated list: "heart, mediastinum and hila are").
const NORMALITY_AFTER_WORDS: usize = 8;
/// Longest gap before it ("normal heart size and mediastinum").
const NORMALITY_BEFORE_WORDS: usize = 3;

/// The statement of normality that applies to the structure at `target`
/// (a byte span inside `sentence` of `text`), if one does: a negation
/// trigger for it. None crosses a termination term, a rival trigger or a
/// word of abnormality.
#[must_use]
pub(crate) fn normality(text: &str, sentence: Span, target: Span) -> Option<TriggerHit> {
    let sentence_text = sentence.slice(text)?;
    let tokens = tokenize(sentence_text, sentence.start);
    let ts = tokens.iter().position(|t| t.span.end > target.start)?;
    let te = tokens.iter().rposition(|t| t.span.start < target.end)? + 1;
    let blocks = |gap: &[Token], offset: usize| {
        found(gap, offset).iter().any(|f| {
            matches!(f.role, Role::Terminate | Role::Suggest)
                || matches!(f.role, Role::Trigger(c, _) if matches!(c, TriggerCategory::Negation | TriggerCategory::Possible))
        })
    };
    let hit = |start: usize, end: usize| {
        let span = Span::new(tokens[start].span.start, tokens[end - 1].span.end);
        TriggerHit {
            text: span.slice(text).unwrap_or_default().to_owned(),
            span,
            category: TriggerCategory::Negation,
        }
    };
    let after = &tokens[te..];
    for (range, kind) in NORMALITY.scan(after) {
        let gap = &after[..range.start];
        if *kind == Normality::Abnormal
            || gap.iter().filter(|t| t.word).count() > NORMALITY_AFTER_WORDS
        {
            break;
        }
        if *kind == Normality::After && !blocks(gap, te) {
            return Some(hit(te + range.start, te + range.end));
        }
    }
    let before = &tokens[..ts];
    let last = NORMALITY.scan(before).into_iter().last();
    if let Some((range, Normality::Before)) = last {
        let gap = &before[range.end..];
        if gap.iter().filter(|t| t.word).count() <= NORMALITY_BEFORE_WORDS
            && !blocks(gap, range.end)
        {
            return Some(hit(range.start, range.end));
        }
    }
    None
}

/// The nearest forward negation among `earlier` (triggers before a verb of
/// suggestion, in text order) whose scope reaches token `verb`, if any.
fn negation_reaching<'a>(earlier: &'a [Found], tokens: &[Token], verb: usize) -> Option<&'a Found> {
    earlier.iter().enumerate().rev().find_map(|(k, f)| {
        let Role::Trigger(TriggerCategory::Negation, Direction::Forward | Direction::Both) = f.role
        else {
            return None;
        };
        in_scope(
            TriggerCategory::Negation,
            &earlier[k + 1..],
            &tokens[f.end..verb],
            Direction::Forward,
        )
        .then_some(f)
    })
}

/// Triggers, pseudo-triggers and terminators in `tokens`, with token indices
/// shifted by `offset`.
fn found(tokens: &[Token], offset: usize) -> Vec<Found> {
    TRIGGERS
        .scan(tokens)
        .into_iter()
        .map(|(range, &role)| Found {
            start: range.start + offset,
            end: range.end + offset,
            role,
        })
        .collect()
}

/// Whether a `category` trigger reaches across `gap` (the tokens between it
/// and the target, read in text order) in `direction`, given the triggers
/// `between` them.
fn in_scope(
    category: TriggerCategory,
    between: &[Found],
    gap: &[Token],
    direction: Direction,
) -> bool {
    let words = gap.iter().filter(|t| t.word).count();
    words <= MAX_WINDOW_WORDS
        && !leaves_parenthesis(gap, direction)
        && between.iter().all(|f| match f.role {
            Role::Terminate => false,
            Role::Pseudo => true,
            Role::Trigger(other, _) => !ends_scope(category, other),
            Role::Suggest => !ends_scope(category, TriggerCategory::Possible),
        })
}

/// Whether a scope running through `gap` would leave a parenthetical it
/// started in: a trigger inside "(...)" speaks only about what is inside.
fn leaves_parenthesis(gap: &[Token], direction: Direction) -> bool {
    let (open, close) = match direction {
        Direction::Backward => (")", "("),
        _ => ("(", ")"),
    };
    let mut depth = 0_i32;
    let mut step = |t: &Token| {
        if t.norm == open {
            depth += 1;
        } else if t.norm == close {
            depth -= 1;
        }
        depth < 0
    };
    match direction {
        Direction::Backward => gap.iter().rev().any(&mut step),
        _ => gap.iter().any(&mut step),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Context of the first occurrence of `target` in `sentence`.
    fn ctx(sentence: &str, target: &str) -> Context {
        let start = sentence
            .to_lowercase()
            .find(&target.to_lowercase())
            .unwrap();
        let span = Span::new(start, start + target.len());
        assess(sentence, Span::new(0, sentence.len()), &[span]).remove(0)
    }

    fn status(sentence: &str, target: &str) -> Assertion {
        ctx(sentence, target).assertion
    }

    #[test]
    fn forward_negation_reaches_list_items() {
        assert_eq!(
            status("There is no focal consolidation or effusion.", "effusion"),
            Assertion::Absent
        );
        let c = ctx("She denies wheezing and fever.", "fever");
        assert_eq!(c.assertion, Assertion::Absent);
        let t = c.trigger.unwrap();
        assert_eq!(
            (t.text.as_str(), t.category),
            ("denies", TriggerCategory::Negation)
        );
        assert_eq!(t.span, Span::new(4, 10));
    }

    #[test]
    fn backward_triggers() {
        assert_eq!(
            status("Acute bleed is ruled out.", "acute bleed"),
            Assertion::Absent
        );
        assert_eq!(
            status("A left apical pneumothorax is not seen.", "pneumothorax"),
            Assertion::Absent
        );
        assert_eq!(status("Edema isn't present.", "edema"), Assertion::Absent);
        assert_eq!(
            status("Pleural effusions aren't seen.", "pleural effusions"),
            Assertion::Absent
        );
        assert_eq!(
            status("Early edema cannot be excluded.", "edema"),
            Assertion::Possible
        );
    }

    #[test]
    fn hedges_make_it_possible() {
        for s in [
            "Opacity may represent atelectasis.",
            "Findings are suggestive of atelectasis.",
            "Cannot exclude atelectasis in the base.",
            "Atelectasis versus scar at the right base.",
            "Questionable atelectasis at the left base.",
            "Atelectasis is in the differential.",
            "Atelectasis would be a consideration.",
            "Atelectasis cannot be entirely excluded.",
            "Left basal atelectasis is not excluded.",
        ] {
            assert_eq!(status(s, "atelectasis"), Assertion::Possible, "{s}");
        }
    }

    #[test]
    fn a_negation_carries_through_a_verb_of_suggestion() {
        for s in [
            "No focal opacity to suggest pneumonia.",
            "There is no consolidation suggesting pneumonia.",
            "No air bronchograms to suggest a pneumonia.",
            "Without lucency to indicate pneumonia.",
        ] {
            let c = ctx(s, "pneumonia");
            assert_eq!(c.assertion, Assertion::Absent, "{s}");
            assert_eq!(c.trigger.unwrap().category, TriggerCategory::Negation);
        }
        // Without the negation the verb hedges; a clause boundary stops it.
        assert_eq!(
            status("Opacity to suggest pneumonia.", "pneumonia"),
            Assertion::Possible
        );
        assert_eq!(
            status("No effusion; findings suggest pneumonia.", "pneumonia"),
            Assertion::Possible
        );
    }

    #[test]
    fn requests_and_recommendations_are_not_findings() {
        for (s, t) in [
            ("Portable film to r/o atelectasis.", "atelectasis"),
            ("Correlate clinically for pneumonia.", "pneumonia"),
            (
                "Recommend follow-up radiograph to document resolution of pneumonia.",
                "pneumonia",
            ),
            (
                "Lateral view limits evaluation for an effusion.",
                "effusion",
            ),
        ] {
            assert!(ctx(s, t).hypothetical, "{s}");
        }
    }

    #[test]
    fn old_and_healed_findings_are_history() {
        for (s, t) in [
            (
                "Residua of prior granulomatous disease.",
                "granulomatous disease",
            ),
            ("Old right rib fractures.", "rib fractures"),
            ("Healed left clavicle fracture.", "clavicle fracture"),
            ("Calcified nodes from prior histoplasmosis.", "nodes"),
        ] {
            assert!(ctx(s, t).historical, "{s}");
        }
        assert!(!ctx("Acute right rib fractures.", "rib fractures").historical);
    }

    #[test]
    fn pseudo_triggers_do_not_negate() {
        assert_eq!(
            status("No change in the moderate effusion.", "effusion"),
            Assertion::Present
        );
        assert_eq!(
            status(
                "Sputum grew gram negative rods with pneumonia.",
                "pneumonia"
            ),
            Assertion::Present
        );
        assert_eq!(
            status("Not only fever but also rash.", "fever"),
            Assertion::Present
        );
        assert_eq!(
            status("He swallowed without difficulty despite the mass.", "mass"),
            Assertion::Present
        );
    }

    #[test]
    fn termination_ends_the_scope() {
        assert_eq!(
            status(
                "No fever, but productive cough persists.",
                "productive cough"
            ),
            Assertion::Present
        );
        assert_eq!(
            status("No fever, but productive cough persists.", "fever"),
            Assertion::Absent
        );
        assert_eq!(
            status(
                "Lungs without consolidation, however a small effusion is present.",
                "effusion"
            ),
            Assertion::Present
        );
    }

    #[test]
    fn parentheticals_keep_their_triggers() {
        assert_eq!(
            status("Cultures (not yet final) confirm pneumonia.", "pneumonia"),
            Assertion::Present
        );
        assert_eq!(
            status("Effusion (no longer) seen.", "effusion"),
            Assertion::Present
        );
        assert_eq!(status("No (left) effusion.", "effusion"), Assertion::Absent);
    }

    #[test]
    fn new_clauses_end_the_scope() {
        let s = "No pneumothorax and there is a small left effusion.";
        assert_eq!(status(s, "pneumothorax"), Assertion::Absent);
        assert_eq!(status(s, "effusion"), Assertion::Present);
        assert_eq!(
            status("There is no effusion.", "effusion"),
            Assertion::Absent
        );
    }

    #[test]
    fn window_limits_reach() {
        let far = "No clear sign in the upper parts of both lungs today of the old scar.";
        assert_eq!(status(far, "scar"), Assertion::Present);
    }

    #[test]
    fn historical_and_family() {
        let h = ctx("Known history of tuberculosis.", "tuberculosis");
        assert!(h.historical && !h.family);
        assert_eq!(h.assertion, Assertion::Present);
        assert_eq!(h.trigger.unwrap().category, TriggerCategory::Historical);
        let f = ctx("His father had a stroke at 50.", "stroke");
        assert!(f.family);
        assert!(ctx("Status post rib resection.", "rib resection").historical);
        assert!(
            !ctx(
                "Compared to the prior study, the effusion is smaller.",
                "effusion"
            )
            .historical
        );
        assert!(ctx("Return if chest pain recurs.", "chest pain").hypothetical);
    }

    #[test]
    fn bad_spans_do_not_panic() {
        let text = "naïve “edema”";
        let out = assess(text, Span::new(0, 3), &[Span::new(0, 100), Span::new(3, 3)]);
        assert_eq!(out.len(), 2);
    }
}
