//! Who may act on a case: a clinician always; an integration client only
//! on what it sent (issue #14, finding 7).

use fusion_store::{CaseKey, CaseRecord, SR_SUBMITTER};

use super::{CasesError, not_found};
use crate::AppState;
use crate::auth::{AuditContext, Permission};

/// Whether the caller may act on `case`: a clinician always; an
/// integration client only on a case holding a note or an instance it sent
/// (another sender's case is as unknown to it as an absent one). The EHR
/// asking for a new version of the case its report joined is the intended
/// use; a key cannot gain a hold on another sender's case by `POST /cases`
/// ([`may_open`]) or by an instance slipped into another sender's study
/// (refused at STOW-RS, issue #14 finding 7).
pub(super) async fn may_act_on(
    state: &AppState,
    ctx: &AuditContext,
    case: &CaseRecord,
) -> Result<bool, CasesError> {
    if ctx.principal.can(Permission::ReadCases) {
        return Ok(true);
    }
    Ok(ownership(state, ctx, case).await?.iter().any(|mine| *mine))
}

/// For each note of `case` and each instance of its study: whether the
/// caller sent it.
async fn ownership(
    state: &AppState,
    ctx: &AuditContext,
    case: &CaseRecord,
) -> Result<Vec<bool>, CasesError> {
    let me = Some(ctx.principal.id.as_str());
    let mut owners = Vec::new();
    for id in &case.note_ids {
        if let Some(n) = state.repository.note(*id).await? {
            owners.push(n.note.submitted_by.as_deref() == me);
        }
    }
    if let Some(study) = &case.study_instance_uid {
        let instances = state.repository.study_instances(study).await?;
        // The service's own SR belongs to no sender: it neither gives nor
        // takes a hold on the case.
        owners.extend(
            instances
                .iter()
                .filter(|i| i.submitted_by.as_deref() != Some(SR_SUBMITTER))
                .map(|i| i.submitted_by.as_deref() == me),
        );
    }
    Ok(owners)
}

/// For an integration client opening a case: the study it names must be
/// unknown or hold only its own instances, and the case its accession
/// number names must hold some of its own data or no other sender's;
/// otherwise it is
/// answered as unknown, before anything is written, so the answer (case id,
/// status, study) never shows another sender's case (issue #14, finding 7).
pub(super) async fn may_open(
    state: &AppState,
    ctx: &AuditContext,
    key: &CaseKey,
) -> Result<(), CasesError> {
    if ctx.principal.can(Permission::ReadCases) {
        return Ok(());
    }
    let me = Some(ctx.principal.id.as_str());
    if let Some(study) = &key.study_instance_uid {
        let instances = state.repository.study_instances(study).await?;
        if instances.iter().any(|i| {
            let by = i.submitted_by.as_deref();
            by != me && by != Some(SR_SUBMITTER)
        }) {
            return Err(not_found("study"));
        }
    }
    if let Some(accession) = &key.accession_number {
        let filter = fusion_store::CaseFilter {
            accession_number: Some(accession.clone()),
            ..fusion_store::CaseFilter::default()
        };
        for summary in state.repository.list_cases(&filter).await? {
            let Some(case) = state.repository.case(summary.id).await? else {
                continue;
            };
            // Another sender's data alone: unknown. A case holding some of
            // the caller's own (the PACS's study, which the EHR's report
            // joined) is one it may act on already ([`may_act_on`]).
            let owners = ownership(state, ctx, &case).await?;
            if owners.iter().any(|mine| !mine) && !owners.iter().any(|mine| *mine) {
                return Err(not_found("case"));
            }
        }
    }
    Ok(())
}
