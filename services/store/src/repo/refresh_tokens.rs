use chrono::{DateTime, Utc};
use enclave_domain::{TenantId, UserId};
use uuid::Uuid;

use crate::{Result, Store};

#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    pub user_id: UserId,
    pub tenant_id: Option<TenantId>,
    /// A new login starts a family (`Uuid::now_v7()`); rotation keeps the family.
    pub family_id: Uuid,
    /// SHA-256 of the opaque token (the token itself is never stored).
    pub token_hash: [u8; 32],
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    pub id: Uuid,
    pub user_id: UserId,
    pub tenant_id: Option<TenantId>,
    pub family_id: Uuid,
    pub expires_at: DateTime<Utc>,
}

/// What presenting a refresh token led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was live; it is now used and `next` replaces it.
    Rotated {
        previous: RefreshTokenRecord,
        next: RefreshTokenRecord,
    },
    /// The token had already been used or revoked: someone replayed it, so the whole family
    /// (including the newest token, possibly held by the attacker) is now revoked.
    Reused {
        family_id: Uuid,
        user_id: UserId,
    },
    Expired,
    Unknown,
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: Uuid,
    user_id: Uuid,
    tenant_id: Option<Uuid>,
    family_id: Uuid,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl TokenRow {
    fn record(&self) -> RefreshTokenRecord {
        RefreshTokenRecord {
            id: self.id,
            user_id: UserId::from_uuid(self.user_id),
            tenant_id: self.tenant_id.map(TenantId::from_uuid),
            family_id: self.family_id,
            expires_at: self.expires_at,
        }
    }
}

/// Refresh-token sessions (platform-level: looked up by hash before any tenant is known).
pub struct RefreshTokens<'s> {
    pub(crate) store: &'s Store,
}

impl RefreshTokens<'_> {
    pub async fn insert(&self, new: &NewRefreshToken) -> Result<RefreshTokenRecord> {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO refresh_tokens (id, user_id, tenant_id, family_id, token_hash, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(new.user_id.as_uuid())
        .bind(new.tenant_id.map(|t| *t.as_uuid()))
        .bind(new.family_id)
        .bind(new.token_hash.as_slice())
        .bind(new.expires_at)
        .execute(self.store.pool())
        .await?;
        Ok(RefreshTokenRecord {
            id,
            user_id: new.user_id,
            tenant_id: new.tenant_id,
            family_id: new.family_id,
            expires_at: new.expires_at,
        })
    }

    /// Exchanges the token hashed as `presented` for `next` (same user, tenant and family;
    /// `next.family_id` is overwritten). Atomic: of two concurrent uses, one rotates and the
    /// other is treated as reuse.
    pub async fn rotate(
        &self,
        presented: &[u8; 32],
        mut next: NewRefreshToken,
    ) -> Result<Rotation> {
        let mut tx = self.store.pool().begin().await?;
        let row: Option<TokenRow> = sqlx::query_as(
            "SELECT id, user_id, tenant_id, family_id, expires_at, used_at, revoked_at
             FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
        )
        .bind(presented.as_slice())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(Rotation::Unknown);
        };
        if row.used_at.is_some() || row.revoked_at.is_some() {
            sqlx::query("UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL")
                .bind(row.family_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(Rotation::Reused {
                family_id: row.family_id,
                user_id: UserId::from_uuid(row.user_id),
            });
        }
        if row.expires_at <= Utc::now() {
            return Ok(Rotation::Expired);
        }
        next.user_id = UserId::from_uuid(row.user_id);
        next.tenant_id = row.tenant_id.map(TenantId::from_uuid);
        next.family_id = row.family_id;
        let next_id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO refresh_tokens (id, user_id, tenant_id, family_id, token_hash, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(next_id)
        .bind(row.user_id)
        .bind(row.tenant_id)
        .bind(row.family_id)
        .bind(next.token_hash.as_slice())
        .bind(next.expires_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE refresh_tokens SET used_at = now(), replaced_by = $2 WHERE id = $1")
            .bind(row.id)
            .bind(next_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let previous = row.record();
        let next = RefreshTokenRecord {
            id: next_id,
            expires_at: next.expires_at,
            ..previous.clone()
        };
        Ok(Rotation::Rotated { previous, next })
    }

    /// Logout: revokes the family of the token hashed as `presented`; false if unknown.
    pub async fn revoke_family_of(&self, presented: &[u8; 32]) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = now()
             WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1) AND revoked_at IS NULL",
        )
        .bind(presented.as_slice())
        .execute(self.store.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Ends every session of `user` (password change, disable).
    pub async fn revoke_all_for_user(&self, user: &UserId) -> Result<u64> {
        let done = sqlx::query("UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL")
            .bind(user.as_uuid())
            .execute(self.store.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// Ends `user`'s sessions in `tenant` (after their membership there is removed).
    pub async fn revoke_for_user_in_tenant(&self, user: &UserId, tenant: &TenantId) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = now()
             WHERE user_id = $1 AND tenant_id = $2 AND revoked_at IS NULL",
        )
        .bind(user.as_uuid())
        .bind(tenant.as_uuid())
        .execute(self.store.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Deletes tokens that expired more than `grace` ago (housekeeping).
    pub async fn prune_expired(&self, grace: chrono::Duration) -> Result<u64> {
        let done = sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < $1")
            .bind(Utc::now() - grace)
            .execute(self.store.pool())
            .await?;
        Ok(done.rows_affected())
    }
}
