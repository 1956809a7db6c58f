//! Enclave's HTTP gateway: authentication, tenancy, limits, content negotiation (JSON/XML) and
//! the OpenAI-compatible inference API in front of the engine. Start it with
//! [`app::Server::start`]; the routes are in [`routes`], their DTOs and the OpenAPI document in
//! [`api`].

pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod error;
pub mod inference;
pub mod limits;
pub mod middleware;
pub(crate) mod multipart;
pub mod negotiate;
pub mod routes;
pub mod settings;
pub mod state;
mod store_errors;
pub mod telemetry;
pub mod xml;

pub use app::{RunningServer, Server, build_app};
pub use error::ApiError;
pub use settings::Settings;
pub use state::AppState;
