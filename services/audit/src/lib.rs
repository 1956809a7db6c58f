//! Enclave's audit trail: one record per API call, chained per tenant with SHA-256, written
//! durably (group commit into PostgreSQL, fsynced local spool while it is unreachable),
//! verifiable in the database and in exported files, with signed checkpoints (Ed25519).

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::type_complexity))]

pub mod bench;
mod canonical;
mod db;
mod error;
mod export;
pub mod ops;
mod prune;
mod query;
mod record;
pub mod redact;
mod signing;
mod verify;
mod verify_db;
mod writer;

pub use canonical::{ChainHash, canonical_json, chain_hash, envelope};
pub use error::AuditError;
pub use export::{ExportFormat, ExportManifest, export, verify_export};
pub use prune::{
    DroppedPartition, KeptPartition, PartitionInfo, PrunePlan, plan_before, plan_retention, prune,
    prune_planned,
};
pub use query::{AuditEvent, AuditFilter, AuditPage, Cursor, MAX_PAGE, query};
pub use record::{
    AdminChange, AuditActor, AuditRecord, AuditResponse, PLATFORM_CHAIN, Phase, PolicyInfo, Usage,
};
pub use signing::{
    AuditPublicKey, AuditSigningKey, Checkpoint, checkpoint_heads, checkpoint_message,
};
pub use verify::{Finding, VerifyReport};
pub use verify_db::{SeqRange, verify_db};
pub use writer::{AuditReceipt, AuditWriter, Durability, StreamAudit, WriterConfig};
