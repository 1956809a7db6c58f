use chrono::{DateTime, Datelike, NaiveDate, Utc};
use enclave_domain::{ApiKeyId, TenantId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Result, Store, StoreError};

/// A tenant's limits; `None` = unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantLimits {
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u32>,
    /// Tokens (prompt + completion) per calendar month, UTC.
    pub monthly_token_budget: Option<u64>,
}

/// An API key's own limits (on top of its tenant's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyLimits {
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u32>,
}

/// Counters of one subject in the current and the previous one-minute window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowCounts {
    pub requests: u64,
    pub tokens: u64,
    pub prev_requests: u64,
    pub prev_tokens: u64,
}

/// Everything a rate-limit decision needs, read in one transaction right after counting the
/// request: limits, window counters (this request included) and the month's usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSnapshot {
    pub tenant_limits: TenantLimits,
    pub key_limits: Option<KeyLimits>,
    pub tenant: WindowCounts,
    pub key: Option<WindowCounts>,
    /// Tokens used this month before this request.
    pub month_tokens: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub period_start: NaiveDate,
    pub requests: u64,
    pub tokens: u64,
}

fn to_i32(field: &'static str, v: Option<u32>) -> Result<Option<i32>> {
    v.map(|v| match i32::try_from(v) {
        Ok(v) if v > 0 => Ok(v),
        _ => Err(StoreError::Invalid {
            field,
            reason: format!("must be 1 to {}", i32::MAX),
        }),
    })
    .transpose()
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// First day of `at`'s month (UTC): the budget period.
pub fn month_start(at: DateTime<Utc>) -> NaiveDate {
    // INVARIANT: day 1 exists in every month.
    #[allow(clippy::unwrap_used)]
    NaiveDate::from_ymd_opt(at.year(), at.month(), 1).unwrap()
}

pub struct RateLimits<'s> {
    pub(crate) store: &'s Store,
}

impl RateLimits<'_> {
    pub async fn tenant_limits(&self, tenant: &TenantId) -> Result<TenantLimits> {
        let mut tx = self.store.tenant_tx(tenant).await?;
        let row: Option<(Option<i32>, Option<i32>, Option<i64>)> = sqlx::query_as(
            "SELECT requests_per_minute, tokens_per_minute, monthly_token_budget FROM tenant_limits WHERE tenant_id = $1",
        )
        .bind(tenant.as_uuid())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let (rpm, tpm, budget) = row.ok_or(StoreError::NotFound { entity: "tenant" })?;
        Ok(TenantLimits {
            requests_per_minute: rpm.map(i32::unsigned_abs),
            tokens_per_minute: tpm.map(i32::unsigned_abs),
            monthly_token_budget: budget.map(to_u64),
        })
    }

    pub async fn set_tenant_limits(
        &self,
        tenant: &TenantId,
        limits: TenantLimits,
    ) -> Result<TenantLimits> {
        let rpm = to_i32("requests_per_minute", limits.requests_per_minute)?;
        let tpm = to_i32("tokens_per_minute", limits.tokens_per_minute)?;
        let budget = limits
            .monthly_token_budget
            .map(|b| {
                i64::try_from(b).map_err(|_| StoreError::Invalid {
                    field: "monthly_token_budget",
                    reason: "too large".into(),
                })
            })
            .transpose()?;
        let mut tx = self.store.tenant_tx(tenant).await?;
        let done = sqlx::query(
            "UPDATE tenant_limits SET requests_per_minute = $2, tokens_per_minute = $3,
                    monthly_token_budget = $4, updated_at = now() WHERE tenant_id = $1",
        )
        .bind(tenant.as_uuid())
        .bind(rpm)
        .bind(tpm)
        .bind(budget)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { entity: "tenant" });
        }
        Ok(limits)
    }

    /// Counts one request carrying `tokens` (an estimate; more can follow via `add_tokens`) in
    /// the windows of the tenant and, if given, the key, and returns what the decision needs.
    /// `window_start` is the current minute; the previous minute is read alongside it.
    pub async fn hit(
        &self,
        tenant: &TenantId,
        key: Option<&ApiKeyId>,
        window_start: DateTime<Utc>,
        tokens: u64,
    ) -> Result<WindowSnapshot> {
        let tokens = i64::try_from(tokens).unwrap_or(i64::MAX);
        let mut tx = self.store.tenant_tx(tenant).await?;
        let limits: Option<(Option<i32>, Option<i32>, Option<i64>)> = sqlx::query_as(
            "SELECT requests_per_minute, tokens_per_minute, monthly_token_budget FROM tenant_limits WHERE tenant_id = $1",
        )
        .bind(tenant.as_uuid())
        .fetch_optional(&mut *tx)
        .await?;
        let (rpm, tpm, budget) = limits.ok_or(StoreError::NotFound { entity: "tenant" })?;
        let tenant_counts = count(
            &mut tx,
            tenant.as_uuid(),
            tenant.as_uuid(),
            window_start,
            1,
            tokens,
        )
        .await?;
        let (key_limits, key_counts) = match key {
            Some(key) => {
                let kl: Option<(Option<i32>, Option<i32>)> = sqlx::query_as(
                    "SELECT requests_per_minute, tokens_per_minute FROM api_keys WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant.as_uuid())
                .bind(key.as_uuid())
                .fetch_optional(&mut *tx)
                .await?;
                let (krpm, ktpm) = kl.ok_or(StoreError::NotFound { entity: "api key" })?;
                let counts = count(
                    &mut tx,
                    tenant.as_uuid(),
                    key.as_uuid(),
                    window_start,
                    1,
                    tokens,
                )
                .await?;
                let limits = KeyLimits {
                    requests_per_minute: krpm.map(i32::unsigned_abs),
                    tokens_per_minute: ktpm.map(i32::unsigned_abs),
                };
                (Some(limits), Some(counts))
            }
            None => (None, None),
        };
        let month_tokens: i64 = sqlx::query_scalar(
            "INSERT INTO usage_counters AS u (tenant_id, period_start, requests, tokens) VALUES ($1, $2, 1, $3)
             ON CONFLICT (tenant_id, period_start) DO UPDATE SET requests = u.requests + 1, tokens = u.tokens + $3
             RETURNING tokens - $3",
        )
        .bind(tenant.as_uuid())
        .bind(month_start(window_start))
        .bind(tokens)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(WindowSnapshot {
            tenant_limits: TenantLimits {
                requests_per_minute: rpm.map(i32::unsigned_abs),
                tokens_per_minute: tpm.map(i32::unsigned_abs),
                monthly_token_budget: budget.map(to_u64),
            },
            key_limits,
            tenant: tenant_counts,
            key: key_counts,
            month_tokens: to_u64(month_tokens),
        })
    }

    /// Adds tokens learnt after the fact (completion tokens) to the windows and the month.
    pub async fn add_tokens(
        &self,
        tenant: &TenantId,
        key: Option<&ApiKeyId>,
        window_start: DateTime<Utc>,
        tokens: u64,
    ) -> Result<()> {
        let tokens = i64::try_from(tokens).unwrap_or(i64::MAX);
        let mut tx = self.store.tenant_tx(tenant).await?;
        count(
            &mut tx,
            tenant.as_uuid(),
            tenant.as_uuid(),
            window_start,
            0,
            tokens,
        )
        .await?;
        if let Some(key) = key {
            count(
                &mut tx,
                tenant.as_uuid(),
                key.as_uuid(),
                window_start,
                0,
                tokens,
            )
            .await?;
        }
        sqlx::query(
            "INSERT INTO usage_counters AS u (tenant_id, period_start, tokens) VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id, period_start) DO UPDATE SET tokens = u.tokens + $3",
        )
        .bind(tenant.as_uuid())
        .bind(month_start(window_start))
        .bind(tokens)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The tenant's usage in the month containing `at`.
    pub async fn usage(&self, tenant: &TenantId, at: DateTime<Utc>) -> Result<Usage> {
        let period_start = month_start(at);
        let mut tx = self.store.tenant_tx(tenant).await?;
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT requests, tokens FROM usage_counters WHERE tenant_id = $1 AND period_start = $2",
        )
        .bind(tenant.as_uuid())
        .bind(period_start)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let (requests, tokens) = row.unwrap_or((0, 0));
        Ok(Usage {
            period_start,
            requests: to_u64(requests),
            tokens: to_u64(tokens),
        })
    }

    /// Deletes windows older than `before` (every tenant; housekeeping, run now and then).
    pub async fn prune_windows(&self, before: DateTime<Utc>) -> Result<u64> {
        let mut tx = self.store.system_tx().await?;
        let done = sqlx::query("DELETE FROM rate_windows WHERE window_start < $1")
            .bind(before)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }
}

/// Upserts the current window of `subject` and reads it with the previous one.
async fn count(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    tenant: &Uuid,
    subject: &Uuid,
    window_start: DateTime<Utc>,
    requests: i32,
    tokens: i64,
) -> Result<WindowCounts> {
    let (cur_r, cur_t): (i32, i64) = sqlx::query_as(
        "INSERT INTO rate_windows AS w (tenant_id, subject, window_start, requests, tokens) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (tenant_id, subject, window_start)
         DO UPDATE SET requests = w.requests + $4, tokens = w.tokens + $5
         RETURNING requests, tokens",
    )
    .bind(tenant)
    .bind(subject)
    .bind(window_start)
    .bind(requests)
    .bind(tokens)
    .fetch_one(&mut **tx)
    .await?;
    let prev: Option<(i32, i64)> = sqlx::query_as(
        "SELECT requests, tokens FROM rate_windows WHERE tenant_id = $1 AND subject = $2 AND window_start = $3",
    )
    .bind(tenant)
    .bind(subject)
    .bind(window_start - chrono::Duration::minutes(1))
    .fetch_optional(&mut **tx)
    .await?;
    let (pr, pt) = prev.unwrap_or((0, 0));
    Ok(WindowCounts {
        requests: u64::from(cur_r.unsigned_abs()),
        tokens: to_u64(cur_t),
        prev_requests: u64::from(pr.unsigned_abs()),
        prev_tokens: to_u64(pt),
    })
}
