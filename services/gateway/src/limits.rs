//! Admission against a tenant's (and its API key's) limits: requests/minute and tokens/minute
//! with a sliding-window estimate over the store's one-minute counters, and the monthly token
//! budget. The counters live in Postgres, so every gateway replica sees the same numbers.

use chrono::{DateTime, Datelike, DurationRound as _, TimeDelta, TimeZone as _, Utc};
use enclave_domain::{ApiKeyId, TenantId};
use enclave_store::{Store, WindowCounts, WindowSnapshot};

use crate::error::ApiError;

const WINDOW_SECS: f64 = 60.0;

/// The start of the one-minute window containing `now`.
pub fn window_start(now: DateTime<Utc>) -> DateTime<Utc> {
    now.duration_trunc(TimeDelta::minutes(1)).unwrap_or(now)
}

/// Sliding-window estimate of a rate: this minute's count plus the share of the previous
/// minute's count that still lies within the last 60 s.
fn estimate(current: u64, previous: u64, elapsed: f64) -> f64 {
    current as f64 + previous as f64 * (1.0 - elapsed / WINDOW_SECS).max(0.0)
}

/// Seconds until the estimate falls back to `limit`, at least 1.
fn retry_after(current: u64, previous: u64, elapsed: f64, limit: u64) -> u64 {
    let wait = if current > limit || previous == 0 {
        WINDOW_SECS - elapsed
    } else {
        // Solve current + previous * (1 - (elapsed + t) / 60) = limit for t.
        WINDOW_SECS * (1.0 - (limit - current) as f64 / previous as f64) - elapsed
    };
    (wait.ceil() as u64).clamp(1, 60)
}

fn check(
    what: &'static str,
    code: &'static str,
    limit: Option<u32>,
    counts: &WindowCounts,
    pick: fn(&WindowCounts) -> (u64, u64),
    elapsed: f64,
) -> Result<(), ApiError> {
    let Some(limit) = limit else { return Ok(()) };
    let (current, previous) = pick(counts);
    if estimate(current, previous, elapsed) <= f64::from(limit) {
        return Ok(());
    }
    Err(ApiError::RateLimited {
        code,
        message: format!("{what} limit of {limit} per minute reached"),
        retry_after_secs: retry_after(current, previous, elapsed, u64::from(limit)),
    })
}

fn requests(c: &WindowCounts) -> (u64, u64) {
    (c.requests, c.prev_requests)
}

fn tokens(c: &WindowCounts) -> (u64, u64) {
    (c.tokens, c.prev_tokens)
}

fn next_month(now: DateTime<Utc>) -> DateTime<Utc> {
    let (y, m) = if now.month() == 12 {
        (now.year() + 1, 1)
    } else {
        (now.year(), now.month() + 1)
    };
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .unwrap_or(now + TimeDelta::days(31))
}

/// The decision over a snapshot taken right after counting this request.
pub fn decide(snap: &WindowSnapshot, now: DateTime<Utc>) -> Result<(), ApiError> {
    let elapsed = (now - window_start(now)).as_seconds_f64();
    let t = &snap.tenant_limits;
    if let Some(budget) = t.monthly_token_budget
        && snap.month_tokens >= budget
    {
        return Err(ApiError::RateLimited {
            code: "token_budget_exhausted",
            message: format!("the monthly token budget of {budget} tokens is used up"),
            retry_after_secs: u64::try_from((next_month(now) - now).num_seconds())
                .unwrap_or(1)
                .max(1),
        });
    }
    check(
        "tenant request",
        "rate_limited_requests",
        t.requests_per_minute,
        &snap.tenant,
        requests,
        elapsed,
    )?;
    check(
        "tenant token",
        "rate_limited_tokens",
        t.tokens_per_minute,
        &snap.tenant,
        tokens,
        elapsed,
    )?;
    if let (Some(k), Some(counts)) = (&snap.key_limits, &snap.key) {
        check(
            "API key request",
            "rate_limited_requests",
            k.requests_per_minute,
            counts,
            requests,
            elapsed,
        )?;
        check(
            "API key token",
            "rate_limited_tokens",
            k.tokens_per_minute,
            counts,
            tokens,
            elapsed,
        )?;
    }
    Ok(())
}

/// Counts one request of `tokens` (prompt tokens; completion tokens follow via [`record_tokens`])
/// and admits or refuses it.
pub async fn admit(
    store: &Store,
    tenant: &TenantId,
    key: Option<&ApiKeyId>,
    tokens: u64,
) -> Result<(), ApiError> {
    let now = Utc::now();
    let snap = store
        .rate_limits()
        .hit(tenant, key, window_start(now), tokens)
        .await?;
    decide(&snap, now)
}

/// Adds tokens learnt after the request was admitted (the completion).
pub async fn record_tokens(store: &Store, tenant: &TenantId, key: Option<&ApiKeyId>, tokens: u64) {
    if tokens == 0 {
        return;
    }
    if let Err(e) = store
        .rate_limits()
        .add_tokens(tenant, key, window_start(Utc::now()), tokens)
        .await
    {
        tracing::warn!(error = %crate::middleware::ErrorChain(&e), "completion tokens not counted");
    }
}

#[cfg(test)]
mod tests {
    use enclave_store::{KeyLimits, TenantLimits};

    use super::*;

    fn snap(limits: TenantLimits, tenant: WindowCounts, month_tokens: u64) -> WindowSnapshot {
        WindowSnapshot {
            tenant_limits: limits,
            key_limits: None,
            tenant,
            key: None,
            month_tokens,
        }
    }

    fn at(secs: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, secs)
            .single()
            .expect("time")
    }

    #[test]
    fn requests_per_minute_use_a_sliding_window() {
        let limits = TenantLimits {
            requests_per_minute: Some(10),
            ..Default::default()
        };
        let counts = |requests, prev_requests| WindowCounts {
            requests,
            prev_requests,
            ..Default::default()
        };
        // (this minute, previous minute, seconds into the minute, admitted?)
        let cases = [
            (10, 0, 0, true),
            (11, 0, 0, false),
            (5, 10, 30, true),
            (6, 10, 30, false),
            (6, 10, 45, true),
        ];
        for (cur, prev, secs, ok) in cases {
            let result = decide(&snap(limits, counts(cur, prev), 0), at(secs));
            assert_eq!(
                result.is_ok(),
                ok,
                "cur {cur} prev {prev} at {secs}s: {result:?}"
            );
            if let Err(ApiError::RateLimited {
                code,
                retry_after_secs,
                ..
            }) = result
            {
                assert_eq!(code, "rate_limited_requests");
                assert!((1..=60).contains(&retry_after_secs));
            }
        }
    }

    #[test]
    fn key_limits_apply_on_top_of_the_tenant() {
        let mut s = snap(TenantLimits::default(), WindowCounts::default(), 0);
        s.key_limits = Some(KeyLimits {
            tokens_per_minute: Some(100),
            ..Default::default()
        });
        s.key = Some(WindowCounts {
            tokens: 150,
            ..Default::default()
        });
        let err = decide(&s, at(10)).expect_err("over the key's token limit");
        assert_eq!(err.code(), "rate_limited_tokens");
    }

    #[test]
    fn an_exhausted_budget_waits_for_next_month() {
        let limits = TenantLimits {
            monthly_token_budget: Some(1000),
            ..Default::default()
        };
        assert!(decide(&snap(limits, WindowCounts::default(), 999), at(0)).is_ok());
        match decide(&snap(limits, WindowCounts::default(), 1000), at(0)) {
            Err(ApiError::RateLimited {
                code,
                retry_after_secs,
                ..
            }) => {
                assert_eq!(code, "token_budget_exhausted");
                let to_april = (Utc
                    .with_ymd_and_hms(2026, 4, 1, 0, 0, 0)
                    .single()
                    .expect("t")
                    - at(0))
                .num_seconds();
                assert_eq!(retry_after_secs, u64::try_from(to_april).expect("positive"));
            }
            other => panic!("expected the budget refusal, got {other:?}"),
        }
    }
}
