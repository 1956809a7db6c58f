use std::path::PathBuf;

/// Everything the store can fail with. `code()` is stable; the gateway maps `NotFound` to 404,
/// `Conflict` to 409, `Invalid` to 422 and the rest to an opaque 5xx.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist, or belongs to another tenant (the two are indistinguishable by design).
    #[error("{entity} not found")]
    NotFound { entity: &'static str },
    /// A uniqueness constraint refused the write; `field()` names the column for API messages.
    #[error("{entity} already exists ({constraint})")]
    Conflict {
        entity: &'static str,
        constraint: String,
    },
    /// A value the caller supplied breaks a rule the types cannot express (length, range, ...).
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// A row read back does not parse into its domain type (hand-edited database, bad migration).
    #[error("corrupt {entity} row: {reason}")]
    Corrupt {
        entity: &'static str,
        reason: String,
    },
    #[error("database error")]
    Database(#[source] sqlx::Error),
    #[error("migration failed")]
    Migration(#[source] sqlx::migrate::MigrateError),
    #[error("embedded PostgreSQL: {0}")]
    Embedded(#[from] EmbeddedError),
}

impl StoreError {
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::NotFound { .. } => "not_found",
            StoreError::Conflict { .. } => "conflict",
            StoreError::Invalid { .. } => "invalid",
            StoreError::Corrupt { .. } => "corrupt_row",
            StoreError::Database(_) => "database",
            StoreError::Migration(_) => "migration",
            StoreError::Embedded(_) => "embedded_postgres",
        }
    }

    /// For `Conflict`: the API field the constraint guards (`slug`, `email`, ...).
    pub fn field(&self) -> Option<&'static str> {
        match self {
            StoreError::Conflict { constraint, .. } => Some(conflict_field(constraint)),
            StoreError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }

    pub(crate) fn corrupt(entity: &'static str, reason: impl ToString) -> Self {
        StoreError::Corrupt {
            entity,
            reason: reason.to_string(),
        }
    }
}

fn conflict_field(constraint: &str) -> &'static str {
    match constraint {
        "tenants_slug_unique" => "slug",
        "users_email_unique" => "email",
        "api_keys_prefix_unique" => "prefix",
        "refresh_tokens_hash_unique" => "token",
        "memberships_pkey" => "user_id",
        "signing_keys_one_active" | "signing_keys_pkey" => "kid",
        _ => "id",
    }
}

fn conflict_entity(constraint: &str) -> &'static str {
    match constraint.split('_').next().unwrap_or_default() {
        "tenants" => "tenant",
        "users" => "user",
        "api" => "api key",
        "memberships" => "membership",
        "refresh" => "refresh token",
        "signing" => "signing key",
        _ => "row",
    }
}

/// Which entity a foreign key points at, from Postgres' default `<table>_<column>_fkey` names.
fn fk_entity(constraint: &str) -> &'static str {
    if constraint.contains("_tenant_id_") {
        "tenant"
    } else if constraint.contains("_user_id_") || constraint.contains("_created_by_") {
        "user"
    } else {
        "referenced row"
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::RowNotFound = e {
            return StoreError::NotFound { entity: "row" };
        }
        if let Some(db) = e.as_database_error() {
            let constraint = db.constraint().unwrap_or_default().to_owned();
            match db.kind() {
                sqlx::error::ErrorKind::UniqueViolation => {
                    return StoreError::Conflict {
                        entity: conflict_entity(&constraint),
                        constraint,
                    };
                }
                sqlx::error::ErrorKind::ForeignKeyViolation => {
                    return StoreError::NotFound {
                        entity: fk_entity(&constraint),
                    };
                }
                sqlx::error::ErrorKind::CheckViolation => {
                    return StoreError::Invalid {
                        field: "value",
                        reason: format!("violates {constraint}"),
                    };
                }
                _ => {}
            }
        }
        StoreError::Database(e)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migration(e)
    }
}

/// Failures of the embedded cluster launcher, each naming what to fix.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "PostgreSQL binaries (initdb, pg_ctl, postgres) not found; looked in {searched}. Install the `postgresql` package or set DATABASE_URL"
    )]
    BinariesNotFound { searched: String },
    #[error(
        "running as root, but the `postgres` system user does not exist (create it: useradd --system postgres)"
    )]
    NoPostgresUser,
    #[error(
        "socket path {path} is too long for a unix socket ({len} > {max} bytes); use a shorter data directory"
    )]
    SocketPathTooLong {
        path: PathBuf,
        len: usize,
        max: usize,
    },
    #[error("{path} cannot be entered by the `postgres` user; its parent directories need o+x")]
    NotTraversable { path: PathBuf },
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} failed ({status}): {output}")]
    Command {
        program: String,
        status: String,
        output: String,
    },
    #[error("could not bootstrap roles and database")]
    Bootstrap(#[source] sqlx::Error),
}
