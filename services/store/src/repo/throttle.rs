use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::Result;
use crate::Store;

/// Failed logins for one (email, client address) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleState {
    pub failures: u32,
    pub locked_until: Option<DateTime<Utc>>,
}

/// Shape of the backoff: the first `free_attempts` failures cost nothing, each further one
/// doubles the lock starting at `base`, capped at `max`; a quiet `reset_after` forgets it all.
#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    pub free_attempts: u32,
    pub base: Duration,
    pub max: Duration,
    pub reset_after: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        ThrottlePolicy {
            free_attempts: 5,
            base: Duration::from_secs(1),
            max: Duration::from_secs(15 * 60),
            reset_after: Duration::from_secs(60 * 60),
        }
    }
}

/// Failed-login counters in Postgres, so every gateway sees the same lock.
pub struct LoginThrottle<'s> {
    pub(crate) store: &'s Store,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl LoginThrottle<'_> {
    pub async fn state(&self, email: &str, client_ip: &str) -> Result<Option<ThrottleState>> {
        let row: Option<(i32, Option<DateTime<Utc>>)> = sqlx::query_as(
            "SELECT failures, locked_until FROM login_throttle WHERE email = $1 AND client_ip = $2",
        )
        .bind(email)
        .bind(client_ip)
        .fetch_optional(self.store.pool())
        .await?;
        Ok(row.map(|(f, locked_until)| ThrottleState {
            failures: f.unsigned_abs(),
            locked_until,
        }))
    }

    /// Counts one failure and sets the lock per `policy`, in one statement (concurrent failures
    /// each count; the row lock serialises them).
    pub async fn record_failure(
        &self,
        email: &str,
        client_ip: &str,
        policy: &ThrottlePolicy,
    ) -> Result<ThrottleState> {
        let (failures, locked_until): (i32, Option<DateTime<Utc>>) = sqlx::query_as(
            "INSERT INTO login_throttle AS t (email, client_ip, failures, last_failure_at, locked_until)
             VALUES ($1, $2, 1, now(), CASE WHEN 1 > $3
                 THEN now() + make_interval(secs => least($5::float8, $4::float8) / 1000) END)
             ON CONFLICT (email, client_ip) DO UPDATE SET
               failures = (CASE WHEN t.last_failure_at < now() - make_interval(secs => $6::float8 / 1000) THEN 1 ELSE t.failures + 1 END),
               last_failure_at = now(),
               locked_until = CASE WHEN (CASE WHEN t.last_failure_at < now() - make_interval(secs => $6::float8 / 1000) THEN 1 ELSE t.failures + 1 END) > $3
                 THEN now() + make_interval(secs => least($5::float8,
                        $4::float8 * power(2, least((CASE WHEN t.last_failure_at < now() - make_interval(secs => $6::float8 / 1000) THEN 1 ELSE t.failures + 1 END) - $3 - 1, 40))) / 1000) END
             RETURNING failures, locked_until",
        )
        .bind(email)
        .bind(client_ip)
        .bind(i32::try_from(policy.free_attempts).unwrap_or(i32::MAX))
        .bind(ms(policy.base))
        .bind(ms(policy.max))
        .bind(ms(policy.reset_after))
        .fetch_one(self.store.pool())
        .await?;
        Ok(ThrottleState {
            failures: failures.unsigned_abs(),
            locked_until,
        })
    }

    /// Forgets the failures after a successful login.
    pub async fn clear(&self, email: &str, client_ip: &str) -> Result<()> {
        sqlx::query("DELETE FROM login_throttle WHERE email = $1 AND client_ip = $2")
            .bind(email)
            .bind(client_ip)
            .execute(self.store.pool())
            .await?;
        Ok(())
    }
}
