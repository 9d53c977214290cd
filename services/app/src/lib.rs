//! The fusion service's application, with no HTTP in it: what the API's
//! handlers, `fusion worker`, `fusion ingest` and the operator's commands
//! all call.
//!
//! [`connect_storage`] opens the database and the blob store and returns
//! the [`State`] every operation takes. The modules, in the order data
//! flows through them:
//!
//! - [`ingest`]: a DICOM instance (STOW-RS part or file) parsed, stored and
//!   indexed ([`index_writer`] group-commits the index), then linked.
//! - [`cases`]: a stored study or note linked to its case, and a prediction
//!   queued for it.
//! - [`worker`]: the inference workers that run the queue and store
//!   predictions.
//! - [`outbox`]: results leaving for the PACS (a DICOM SR, built by [`sr`])
//!   and the EHR (a FHIR R4 bundle, [`fhir_report`]).
//! - [`monitoring`]: the model monitor over reviewed predictions
//!   ([`reviews_export`]) and model inputs.
//! - [`admin`], [`secrets`]: users, API keys and their secrets;
//!   [`audit_export`]: the audit trail as FHIR R4 AuditEvents and its chain
//!   check; [`blob_gc`]: blobs no row refers to.
//! - [`config`], [`telemetry`], [`metrics`]: settings, logs and traces,
//!   the meters.

pub mod actor;
pub mod admin;
pub mod audit_export;
pub mod blob_gc;
pub mod calls;
pub mod cases;
pub mod config;
pub mod destinations;
pub mod fhir_report;
pub mod index_writer;
pub mod ingest;
pub mod metrics;
pub mod monitoring;
pub mod outbox;
pub mod reviews_export;
pub mod secrets;
pub mod sr;
pub mod telemetry;
pub mod watch;
pub mod worker;

mod state;

pub use actor::Actor;
pub use config::{LogFormat, Overrides, Settings, SettingsError};
pub use state::{StartupError, State, connect_storage, publish_audit_head};
