//! The fusion service's HTTP layer (actix-web): the route table, the
//! authentication gate, routes, dashboard pages and the OpenAPI document.
//! The application itself (ingest, cases, workers, outbox, monitoring,
//! administration) is `fusion_app`, which handlers call.
//!
//! [`Application::build`] wires settings, storage and routes and binds its own
//! listener (port 0 in tests), so the binary stays thin and the tests run the
//! real thing. Route groups live one per file under `routes/`.

pub mod auth;
mod body_timeout;
pub mod dashboard;
mod gate;
pub mod metrics;
pub mod public_url;

mod error;
pub mod openapi;
pub mod route_table;
pub mod routes;
mod startup;
mod state;
pub mod telemetry;

pub use error::ApiError;
pub use fusion_app::{LogFormat, Settings, SettingsError};
pub use startup::{Application, StartupError, connect_storage};
pub use state::{AppState, AuthSettings};
