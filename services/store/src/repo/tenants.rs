use chrono::{DateTime, Utc};
use enclave_domain::{Role, TenantId, TenantSlug, UserId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Result, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    Active,
    /// Requests are refused; data is kept.
    Suspended,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "active" => Ok(TenantStatus::Active),
            "suspended" => Ok(TenantStatus::Suspended),
            other => Err(StoreError::corrupt("tenant", format!("status {other:?}"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    pub id: TenantId,
    pub slug: TenantSlug,
    pub name: String,
    pub status: TenantStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What authentication needs to know about a tenant on each request: whether it may act, and
/// (for a user's token) which role the user still holds in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantAccess {
    pub status: TenantStatus,
    /// The user's current membership role; `None` when not (or no longer) a member.
    pub member_role: Option<Role>,
}

#[derive(Debug, Clone)]
pub struct NewTenant {
    pub slug: TenantSlug,
    /// Display name, 1..=200 characters.
    pub name: String,
}

#[derive(sqlx::FromRow)]
struct TenantRow {
    id: Uuid,
    slug: String,
    name: String,
    status: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<TenantRow> for Tenant {
    type Error = StoreError;
    fn try_from(r: TenantRow) -> Result<Tenant> {
        Ok(Tenant {
            id: TenantId::from_uuid(r.id),
            slug: TenantSlug::parse(&r.slug).map_err(|e| StoreError::corrupt("tenant", e))?,
            name: r.name,
            status: TenantStatus::parse(&r.status)?,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

pub(crate) fn check_display_name(field: &'static str, name: &str, max: usize) -> Result<()> {
    let len = name.chars().count();
    if name.trim().is_empty() || len > max {
        return Err(StoreError::Invalid {
            field,
            reason: format!("must be 1 to {max} characters"),
        });
    }
    Ok(())
}

/// Tenants. Creating and listing span tenants (platform admin); reading one runs in its context.
pub struct Tenants<'s> {
    pub(crate) store: &'s Store,
}

impl Tenants<'_> {
    /// Creates the tenant (and its empty limits row: everything unlimited).
    pub async fn create(&self, new: NewTenant) -> Result<Tenant> {
        check_display_name("name", &new.name, 200)?;
        let id = TenantId::new();
        let mut tx = self.store.tenant_tx(&id).await?;
        let row: TenantRow = sqlx::query_as(
            "INSERT INTO tenants (id, slug, name) VALUES ($1, $2, $3)
             RETURNING id, slug, name, status, created_at, updated_at",
        )
        .bind(id.as_uuid())
        .bind(new.slug.as_str())
        .bind(new.name.trim())
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO tenant_limits (tenant_id) VALUES ($1)")
            .bind(id.as_uuid())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        row.try_into()
    }

    pub async fn get(&self, tenant: &TenantId) -> Result<Tenant> {
        let mut tx = self.store.tenant_tx(tenant).await?;
        let row: Option<TenantRow> = sqlx::query_as(
            "SELECT id, slug, name, status, created_at, updated_at FROM tenants WHERE id = $1",
        )
        .bind(tenant.as_uuid())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.ok_or(StoreError::NotFound { entity: "tenant" })?
            .try_into()
    }

    /// The tenant's status and `user`'s role in it, in one round trip; `None` when the tenant
    /// does not exist (deleted).
    pub async fn access(
        &self,
        tenant: &TenantId,
        user: Option<&UserId>,
    ) -> Result<Option<TenantAccess>> {
        let mut tx = self.store.tenant_tx(tenant).await?;
        let row: Option<(String, Option<String>)> = sqlx::query_as(
            "SELECT t.status, m.role FROM tenants t
             LEFT JOIN memberships m ON m.tenant_id = t.id AND m.user_id = $2
             WHERE t.id = $1",
        )
        .bind(tenant.as_uuid())
        .bind(user.map(|u| *u.as_uuid()))
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let Some((status, role)) = row else {
            return Ok(None);
        };
        let member_role = role
            .map(|r| r.parse::<Role>())
            .transpose()
            .map_err(|e| StoreError::corrupt("membership", e))?;
        Ok(Some(TenantAccess {
            status: TenantStatus::parse(&status)?,
            member_role,
        }))
    }

    /// Looks a tenant up by slug (platform-wide: the slug is how operators name tenants).
    pub async fn get_by_slug(&self, slug: &TenantSlug) -> Result<Tenant> {
        let mut tx = self.store.system_tx().await?;
        let row: Option<TenantRow> = sqlx::query_as(
            "SELECT id, slug, name, status, created_at, updated_at FROM tenants WHERE slug = $1",
        )
        .bind(slug.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.ok_or(StoreError::NotFound { entity: "tenant" })?
            .try_into()
    }

    /// All tenants ordered by id (creation order), `limit` at a time after `after` (platform admin).
    pub async fn list(&self, after: Option<&TenantId>, limit: u32) -> Result<Vec<Tenant>> {
        let mut tx = self.store.system_tx().await?;
        let rows: Vec<TenantRow> = sqlx::query_as(
            "SELECT id, slug, name, status, created_at, updated_at FROM tenants
             WHERE $1::uuid IS NULL OR id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after.map(|t| *t.as_uuid()))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.into_iter().map(Tenant::try_from).collect()
    }

    pub async fn rename(&self, tenant: &TenantId, name: &str) -> Result<Tenant> {
        check_display_name("name", name, 200)?;
        self.update(
            tenant,
            "UPDATE tenants SET name = $2, updated_at = now() WHERE id = $1
                              RETURNING id, slug, name, status, created_at, updated_at",
            name.trim(),
        )
        .await
    }

    pub async fn set_status(&self, tenant: &TenantId, status: TenantStatus) -> Result<Tenant> {
        self.update(
            tenant,
            "UPDATE tenants SET status = $2, updated_at = now() WHERE id = $1
                              RETURNING id, slug, name, status, created_at, updated_at",
            status.as_str(),
        )
        .await
    }

    async fn update(&self, tenant: &TenantId, sql: &'static str, value: &str) -> Result<Tenant> {
        let mut tx = self.store.tenant_tx(tenant).await?;
        let row: Option<TenantRow> = sqlx::query_as(sql)
            .bind(tenant.as_uuid())
            .bind(value)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        row.ok_or(StoreError::NotFound { entity: "tenant" })?
            .try_into()
    }
}
