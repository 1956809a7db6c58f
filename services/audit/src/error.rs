use std::path::PathBuf;

/// Everything the audit crate can fail with. Database and I/O errors keep their source.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("invalid audit record: field `{field}` {reason}")]
    InvalidRecord { field: &'static str, reason: String },
    #[error("database error while {context}")]
    Database {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("audit spool {}: {context}", path.display())]
    Spool {
        path: PathBuf,
        context: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("audit spool {} is corrupt at byte {offset}: {reason}", path.display())]
    SpoolCorrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("the audit batch this record was in failed: {reason}")]
    BatchFailed { reason: String },
    #[error("the audit writer has stopped")]
    WriterStopped,
    #[error("encoding {context}")]
    Json {
        context: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("i/o error while {context}")]
    Io {
        context: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("csv export")]
    Csv(#[from] csv::Error),
    #[error("xml export")]
    Xml(#[from] quick_xml::Error),
    #[error("invalid export file: {reason}")]
    BadExport { reason: String },
    #[error("signing key: {reason}")]
    Key { reason: String },
    #[error("invalid query parameter `{field}`: {reason}")]
    InvalidQuery { field: &'static str, reason: String },
}

impl AuditError {
    pub(crate) fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> AuditError {
        move |source| AuditError::Database { context, source }
    }

    pub(crate) fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> AuditError {
        move |source| AuditError::Io { context, source }
    }

    pub(crate) fn json(context: &'static str) -> impl FnOnce(serde_json::Error) -> AuditError {
        move |source| AuditError::Json { context, source }
    }

    /// True when the database could not be reached at all (as opposed to refusing a statement):
    /// the writer spools on these and retries later.
    pub fn is_unreachable(&self) -> bool {
        match self {
            AuditError::Database { source, .. } => is_connectivity(source),
            _ => false,
        }
    }
}

pub(crate) fn is_connectivity(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // 08xxx connection exceptions; 57P01-03 server shutting down / starting up;
            // 53300 too many connections.
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300")
        }
        _ => false,
    }
}
