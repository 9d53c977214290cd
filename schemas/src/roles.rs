//! The service's roles. What each may do is the permission matrix in the API
//! crate (`fusion_api::auth::permissions`), the one place that decides.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A role held by a user or an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A system that sends data: the PACS (STOW-RS) or the EHR (notes).
    Integration,
    /// A clinician: reads cases, images, notes and predictions; reviews.
    Clinician,
    /// A compliance officer: reads and exports the audit trail.
    Auditor,
    /// An administrator: users, API keys, model packages.
    Admin,
}

impl Role {
    /// Every role, in a fixed order.
    pub const ALL: [Role; 4] = [
        Role::Integration,
        Role::Clinician,
        Role::Auditor,
        Role::Admin,
    ];

    /// The role's name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Integration => "integration",
            Self::Clinician => "clinician",
            Self::Auditor => "auditor",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of [`Role::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}: expected integration, clinician, auditor or admin")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!("root".parse::<Role>().is_err());
    }
}
