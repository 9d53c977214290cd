//! The fusion service's actix-web application.
//!
//! [`Application::build`] wires settings, storage and routes and binds its own
//! listener (port 0 in tests), so the binary stays thin and the tests run the
//! real thing. Route groups live one per file under `routes/`.

pub mod admin;
pub mod audit_export;
pub mod auth;
pub mod blob_gc;
pub mod config;
pub mod dashboard;
pub mod fhir_report;
mod gate;
pub mod index_writer;
pub mod inference;
pub mod ingest;
pub mod metrics;
pub mod monitoring;
pub mod outbox;
pub mod public_url;
pub mod sr;

mod error;
pub mod openapi;
pub mod reviews_export;
pub mod route_table;
pub mod routes;
mod startup;
pub mod telemetry;

pub use config::{LogFormat, Settings, SettingsError};
pub use error::ApiError;
pub use startup::{AppState, Application, AuthSettings, StartupError, connect_storage};
