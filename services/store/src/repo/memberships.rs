use chrono::{DateTime, Utc};
use enclave_domain::{Email, Role, TenantId, UserId};
use serde::Serialize;
use uuid::Uuid;

use crate::{Result, Store, StoreError};

/// A user's role in one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Membership {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

/// A membership joined with the member's email, for listings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub user_id: UserId,
    pub email: Email,
    pub role: Role,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct MembershipRow {
    tenant_id: Uuid,
    user_id: Uuid,
    role: String,
    created_at: DateTime<Utc>,
}

impl TryFrom<MembershipRow> for Membership {
    type Error = StoreError;
    fn try_from(r: MembershipRow) -> Result<Membership> {
        Ok(Membership {
            tenant_id: TenantId::from_uuid(r.tenant_id),
            user_id: UserId::from_uuid(r.user_id),
            role: parse_role(&r.role)?,
            created_at: r.created_at,
        })
    }
}

fn parse_role(s: &str) -> Result<Role> {
    s.parse().map_err(|e| StoreError::corrupt("membership", e))
}

pub struct Memberships<'s> {
    pub(crate) store: &'s Store,
}

impl Memberships<'_> {
    /// Adds `user` to `tenant` with `role`, or changes the role of an existing member.
    pub async fn upsert(&self, tenant: &TenantId, user: &UserId, role: Role) -> Result<Membership> {
        if !role.is_tenant_role() {
            return Err(StoreError::Invalid {
                field: "role",
                reason: "platform_admin is not a tenant role".into(),
            });
        }
        let mut tx = self.store.tenant_tx(tenant).await?;
        // Deleted users keep their row (audit), so the foreign key alone would accept them.
        let live: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NULL)",
        )
        .bind(user.as_uuid())
        .fetch_one(&mut *tx)
        .await?;
        if !live {
            return Err(StoreError::NotFound { entity: "user" });
        }
        let row: MembershipRow = sqlx::query_as(
            "INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = EXCLUDED.role
             RETURNING tenant_id, user_id, role, created_at",
        )
        .bind(tenant.as_uuid())
        .bind(user.as_uuid())
        .bind(role.as_str())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        row.try_into()
    }

    pub async fn get(&self, tenant: &TenantId, user: &UserId) -> Result<Membership> {
        let mut tx = self.store.tenant_tx(tenant).await?;
        let row: Option<MembershipRow> = sqlx::query_as(
            "SELECT tenant_id, user_id, role, created_at FROM memberships WHERE tenant_id = $1 AND user_id = $2",
        )
        .bind(tenant.as_uuid())
        .bind(user.as_uuid())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.ok_or(StoreError::NotFound {
            entity: "membership",
        })?
        .try_into()
    }

    /// The tenant's live members, oldest first.
    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<Member>> {
        let mut tx = self.store.tenant_tx(tenant).await?;
        let rows: Vec<(Uuid, String, String, bool, DateTime<Utc>)> = sqlx::query_as(
            "SELECT m.user_id, u.email, m.role, u.disabled_at IS NOT NULL, m.created_at
             FROM memberships m JOIN users u ON u.id = m.user_id
             WHERE m.tenant_id = $1 AND u.deleted_at IS NULL ORDER BY m.created_at, m.user_id",
        )
        .bind(tenant.as_uuid())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.into_iter()
            .map(|(user_id, email, role, disabled, created_at)| {
                Ok(Member {
                    user_id: UserId::from_uuid(user_id),
                    email: Email::parse(&email).map_err(|e| StoreError::corrupt("user", e))?,
                    role: parse_role(&role)?,
                    disabled,
                    created_at,
                })
            })
            .collect()
    }

    pub async fn remove(&self, tenant: &TenantId, user: &UserId) -> Result<()> {
        let mut tx = self.store.tenant_tx(tenant).await?;
        let done = sqlx::query("DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant.as_uuid())
            .bind(user.as_uuid())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                entity: "membership",
            });
        }
        Ok(())
    }

    /// How many tenants `user` belongs to, suspended ones included (deciding whether removing a
    /// membership leaves the account without any tenant).
    pub async fn count_for_user(&self, user: &UserId) -> Result<u64> {
        let mut tx = self.store.system_tx().await?;
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM memberships WHERE user_id = $1")
            .bind(user.as_uuid())
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n.unsigned_abs())
    }

    /// Every tenant `user` belongs to (login picks among them before any tenant is known).
    pub async fn for_user(&self, user: &UserId) -> Result<Vec<Membership>> {
        let mut tx = self.store.system_tx().await?;
        let rows: Vec<MembershipRow> = sqlx::query_as(
            "SELECT m.tenant_id, m.user_id, m.role, m.created_at FROM memberships m
             JOIN tenants t ON t.id = m.tenant_id
             WHERE m.user_id = $1 AND t.status = 'active' ORDER BY m.created_at",
        )
        .bind(user.as_uuid())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.into_iter().map(Membership::try_from).collect()
    }
}
