//! Test harness (feature `test-support`): one throwaway cluster per test process, one fresh,
//! migrated database per test.
//!
//! The cluster lives in a temporary directory, starts on first use and is stopped (and its
//! directory removed) when the process exits. It runs without fsync: nothing in it must survive.

use std::sync::{Mutex, OnceLock};

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection};

use crate::db::{APP_ROLE, DbUrls, OWNER_ROLE};
use crate::embedded::{self, EmbeddedOptions, EmbeddedPostgres, SUPERUSER};
use crate::{Store, StoreError, migrate};

struct Cluster {
    pg: EmbeddedPostgres,
    dir: tempfile::TempDir,
}

static CLUSTER: OnceLock<Result<(), String>> = OnceLock::new();
static RUNNING: Mutex<Option<Cluster>> = Mutex::new(None);

extern "C" fn stop_cluster_at_exit() {
    let cluster = RUNNING.lock().ok().and_then(|mut c| c.take());
    if let Some(mut cluster) = cluster {
        let _ = cluster.pg.stop();
        let dir = cluster.dir.path().to_owned();
        drop(cluster);
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn start_cluster() -> Result<(), String> {
    let dir = tempfile::Builder::new()
        .prefix("enclave-pg-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    // The server may run as the `postgres` user (when tests run as root): let it walk in.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))
            .map_err(|e| e.to_string())?;
    }
    let mut opts = EmbeddedOptions::new(dir.path().join("pg"));
    opts.durable = false;
    opts.max_connections = 300;
    // Start on a thread with its own runtime: the caller's runtime belongs to one test and
    // dies with it, while the cluster outlives every test.
    let pg = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(EmbeddedPostgres::start(opts))
            .map_err(|e| format!("{e}: {:?}", std::error::Error::source(&e)))
    })
    .join()
    .map_err(|_| "cluster start panicked".to_owned())??;
    *RUNNING.lock().map_err(|e| e.to_string())? = Some(Cluster { pg, dir });
    // SAFETY: registering a plain extern "C" fn without arguments; it only touches statics.
    unsafe { libc::atexit(stop_cluster_at_exit) };
    Ok(())
}

/// A database of its own for one test, migrated, with pools for each role.
pub struct TestDb {
    name: String,
    urls: DbUrls,
    admin_url: String,
    store: Store,
    owner_pool: PgPool,
    admin_pool: PgPool,
}

impl TestDb {
    /// A fresh migrated database on the process's throwaway cluster. Panics with the reason
    /// when PostgreSQL cannot be started (a test cannot proceed without it).
    pub async fn fresh() -> TestDb {
        match Self::try_fresh().await {
            Ok(db) => db,
            Err(e) => panic!("test database: {e}"),
        }
    }

    /// Same as [`TestDb::fresh`].
    pub async fn new() -> TestDb {
        Self::fresh().await
    }

    pub async fn try_fresh() -> Result<TestDb, StoreError> {
        let started = CLUSTER.get_or_init(start_cluster);
        if let Err(e) = started {
            return Err(StoreError::Invalid {
                field: "test cluster",
                reason: e.clone(),
            });
        }
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let (urls, admin_url, super_opts) = {
            let guard = RUNNING.lock().map_err(|e| StoreError::Invalid {
                field: "test cluster",
                reason: e.to_string(),
            })?;
            let Some(cluster) = guard.as_ref() else {
                return Err(StoreError::Invalid {
                    field: "test cluster",
                    reason: "stopped".into(),
                });
            };
            let pg = &cluster.pg;
            let urls = DbUrls {
                owner: pg.url(OWNER_ROLE, &name),
                app: pg.url(APP_ROLE, &name),
            };
            (
                urls,
                pg.url(SUPERUSER, &name),
                pg.connect_options(SUPERUSER, "postgres"),
            )
        };
        let mut conn = sqlx::PgConnection::connect_with(&super_opts).await?;
        embedded::create_database(&mut conn, &name).await?;
        conn.close().await?;

        let owner_pool = PgPoolOptions::new()
            .max_connections(2)
            .connect(&urls.owner)
            .await?;
        migrate(&owner_pool).await?;
        let app_pool = PgPoolOptions::new()
            .max_connections(5)
            .connect(&urls.app)
            .await?;
        let admin_pool = PgPoolOptions::new()
            .max_connections(2)
            .connect(&admin_url)
            .await?;
        Ok(TestDb {
            name,
            urls,
            admin_url,
            store: Store::from_pool(app_pool),
            owner_pool,
            admin_pool,
        })
    }

    /// The store, connected as the application role (row-level security applies).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The application role's pool.
    pub fn pool(&self) -> &PgPool {
        self.store.pool()
    }

    /// The schema owner's pool (what migrations run as; still bound by forced RLS).
    pub fn owner_pool(&self) -> &PgPool {
        &self.owner_pool
    }

    /// A superuser pool on this test's database: bypasses RLS and grants. For inspecting
    /// tables and simulating a hostile DBA, never for the code under test.
    pub fn admin_pool(&self) -> &PgPool {
        &self.admin_pool
    }

    /// The application role's URL.
    pub fn url(&self) -> &str {
        &self.urls.app
    }

    pub fn urls(&self) -> &DbUrls {
        &self.urls
    }

    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    pub fn database_name(&self) -> &str {
        &self.name
    }

    /// Runs raw SQL as superuser (test setup/inspection).
    pub async fn admin_exec(&self, sql: &str) -> Result<(), StoreError> {
        sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
            .execute(&self.admin_pool)
            .await?;
        Ok(())
    }
}
