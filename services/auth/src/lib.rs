//! Authentication for Enclave: who is calling, proven by an access token (EdDSA JWT from our own
//! key ring), an API key, or a refresh token exchanged for new tokens.
//!
//! Everything shared between gateways lives in Postgres (enclave-store): users, password hashes,
//! key hashes, signing keys, refresh-token families, failed-login counters. Processes keep only
//! short caches, so N gateways behave like one.

mod api_key;
mod authenticator;
mod cache;
mod error;
mod jwt;
mod password;
mod secret;

pub use api_key::{API_KEY_PREFIX, ApiKeySecret, CreatedApiKey, NewApiKeyRequest, ParsedApiKey};
pub use authenticator::{AuthConfig, Authenticator, LoginRequest, TokenPair};
pub use error::AuthError;
pub use jwt::{AccessClaims, KeyRing};
pub use password::{PasswordHasher, PasswordPolicy, generate_password};
pub use secret::sha256;
