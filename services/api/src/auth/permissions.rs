//! The permission matrix: the one place that says which role may do what
//! (HIPAA §164.312(a)(1) access control). Routes name a [`Permission`];
//! nothing else decides.

use fusion_schemas::Role;
use serde::Serialize;

/// Who sees the model monitor (`GET /monitoring`) and the operational
/// metrics (`GET /metrics`): administrators and auditors.
pub const MONITORING: &[Permission] = &[Permission::ManageModels, Permission::ReadAudit];

/// Something a route lets its caller do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Store DICOM instances (STOW-RS).
    StoreInstances,
    /// Submit clinical notes.
    SubmitNotes,
    /// Search and retrieve any study (QIDO-RS, WADO-RS, rendered images).
    ReadImages,
    /// Read back what this client itself submitted (studies it stored,
    /// notes it sent): the integration client's checks.
    ReadOwnSubmissions,
    /// Read notes with their text and extracted mentions.
    ReadNotes,
    /// Read cases and predictions.
    ReadCases,
    /// Create cases and request predictions.
    RunPredictions,
    /// Review predictions (accept, reject, amend).
    ReviewPredictions,
    /// Read and export the audit trail.
    ReadAudit,
    /// Manage users and API keys.
    ManageIdentities,
    /// Install and remove model packages.
    ManageModels,
    /// Read who one is (any authenticated caller).
    ReadSelf,
}

impl Permission {
    /// Every permission, in a fixed order.
    pub const ALL: [Permission; 12] = [
        Permission::StoreInstances,
        Permission::SubmitNotes,
        Permission::ReadImages,
        Permission::ReadOwnSubmissions,
        Permission::ReadNotes,
        Permission::ReadCases,
        Permission::RunPredictions,
        Permission::ReviewPredictions,
        Permission::ReadAudit,
        Permission::ManageIdentities,
        Permission::ManageModels,
        Permission::ReadSelf,
    ];
}

/// Whether `role` holds `permission`.
///
/// - integration (the PACS, the EHR): sends studies and notes, reads back
///   only what it sent itself, and may request predictions;
/// - clinician: reads images, notes, cases and predictions, and reviews;
/// - auditor: the audit trail only (events name patients by id, nothing more);
/// - admin: identities and model packages, not patient data.
pub fn allows(role: Role, permission: Permission) -> bool {
    use Permission as P;
    use Role as R;
    match permission {
        P::StoreInstances | P::SubmitNotes | P::ReadOwnSubmissions => {
            matches!(role, R::Integration)
        }
        P::ReadImages | P::ReadNotes | P::ReadCases | P::ReviewPredictions => {
            matches!(role, R::Clinician)
        }
        P::RunPredictions => matches!(role, R::Integration | R::Clinician),
        P::ReadAudit => matches!(role, R::Auditor),
        P::ManageIdentities | P::ManageModels => matches!(role, R::Admin),
        P::ReadSelf => true,
    }
}
