use chrono::{DateTime, Utc};
use enclave_domain::{Email, UserId};
use serde::Serialize;
use uuid::Uuid;

use crate::{Result, Store, StoreError};

/// A user account as the API shows it (no credential material).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub is_platform_admin: bool,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

/// What login needs: the account and its password hash (argon2id PHC string, if any).
#[derive(Clone)]
pub struct UserCredentials {
    pub user: User,
    pub password_hash: Option<String>,
}

impl std::fmt::Debug for UserCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserCredentials")
            .field("user", &self.user)
            .field("password_hash", &"<redacted>")
            .finish()
    }
}

/// The cheap per-request check behind access-token verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserStatus {
    pub active: bool,
    pub is_platform_admin: bool,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: Email,
    /// argon2id PHC string made by enclave-auth; `None` = no password login.
    pub password_hash: Option<String>,
    pub is_platform_admin: bool,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    email: String,
    is_platform_admin: bool,
    disabled: bool,
    created_at: DateTime<Utc>,
    password_hash: Option<String>,
}

impl UserRow {
    fn into_credentials(self) -> Result<UserCredentials> {
        let user = User {
            id: UserId::from_uuid(self.id),
            email: Email::parse(&self.email).map_err(|e| StoreError::corrupt("user", e))?,
            is_platform_admin: self.is_platform_admin,
            disabled: self.disabled,
            created_at: self.created_at,
        };
        Ok(UserCredentials {
            user,
            password_hash: self.password_hash,
        })
    }
}

/// Users are platform-wide; deleted users (soft delete) are invisible to every function here.
pub struct Users<'s> {
    pub(crate) store: &'s Store,
}

impl Users<'_> {
    pub async fn create(&self, new: NewUser) -> Result<User> {
        let row: UserRow = sqlx::query_as(
            "INSERT INTO users (id, email, password_hash, is_platform_admin) VALUES ($1, $2, $3, $4)
             RETURNING id, email, is_platform_admin, disabled_at IS NOT NULL AS disabled, created_at, password_hash",
        )
        .bind(UserId::new().as_uuid())
        .bind(new.email.as_str())
        .bind(new.password_hash)
        .bind(new.is_platform_admin)
        .fetch_one(self.store.pool())
        .await?;
        Ok(row.into_credentials()?.user)
    }

    pub async fn get(&self, user: &UserId) -> Result<User> {
        let row: Option<UserRow> = sqlx::query_as(
            "SELECT id, email, is_platform_admin, disabled_at IS NOT NULL AS disabled, created_at, password_hash
             FROM users WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(user.as_uuid())
        .fetch_optional(self.store.pool())
        .await?;
        Ok(row
            .ok_or(StoreError::NotFound { entity: "user" })?
            .into_credentials()?
            .user)
    }

    /// The account and hash for a login attempt; `None` when no live account has this email.
    pub async fn credentials_by_email(&self, email: &Email) -> Result<Option<UserCredentials>> {
        let row: Option<UserRow> = sqlx::query_as(
            "SELECT id, email, is_platform_admin, disabled_at IS NOT NULL AS disabled, created_at, password_hash
             FROM users WHERE email = $1 AND deleted_at IS NULL",
        )
        .bind(email.as_str())
        .fetch_optional(self.store.pool())
        .await?;
        row.map(UserRow::into_credentials).transpose()
    }

    /// `None` for a deleted or unknown user. One primary-key lookup.
    pub async fn status(&self, user: &UserId) -> Result<Option<UserStatus>> {
        let row: Option<(bool, bool)> = sqlx::query_as(
            "SELECT disabled_at IS NULL, is_platform_admin FROM users WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(user.as_uuid())
        .fetch_optional(self.store.pool())
        .await?;
        Ok(row.map(|(active, is_platform_admin)| UserStatus {
            active,
            is_platform_admin,
        }))
    }

    pub async fn set_password_hash(&self, user: &UserId, hash: &str) -> Result<()> {
        self.exec("UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1 AND deleted_at IS NULL",
                  user, Some(hash)).await
    }

    pub async fn set_platform_admin(&self, user: &UserId, yes: bool) -> Result<()> {
        let done = sqlx::query("UPDATE users SET is_platform_admin = $2, updated_at = now() WHERE id = $1 AND deleted_at IS NULL")
            .bind(user.as_uuid())
            .bind(yes)
            .execute(self.store.pool())
            .await?;
        found(done.rows_affected())
    }

    /// Disabling blocks login, refresh and every outstanding access token (checked per request).
    pub async fn set_disabled(&self, user: &UserId, disabled: bool) -> Result<()> {
        let done = sqlx::query(
            "UPDATE users SET disabled_at = CASE WHEN $2 THEN coalesce(disabled_at, now()) END, updated_at = now()
             WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(user.as_uuid())
        .bind(disabled)
        .execute(self.store.pool())
        .await?;
        found(done.rows_affected())
    }

    /// Soft delete: the id stays resolvable for audit, the credential and sessions go, the
    /// memberships go, and the email can be registered again.
    pub async fn delete(&self, user: &UserId) -> Result<()> {
        let mut tx = self.store.system_tx().await?;
        let done = sqlx::query(
            "UPDATE users SET deleted_at = now(), password_hash = NULL, updated_at = now()
             WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(user.as_uuid())
        .execute(&mut *tx)
        .await?;
        found(done.rows_affected())?;
        sqlx::query("DELETE FROM memberships WHERE user_id = $1")
            .bind(user.as_uuid())
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL")
            .bind(user.as_uuid())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Live users ordered by id, `limit` at a time after `after` (platform admin).
    pub async fn list(&self, after: Option<&UserId>, limit: u32) -> Result<Vec<User>> {
        let rows: Vec<UserRow> = sqlx::query_as(
            "SELECT id, email, is_platform_admin, disabled_at IS NOT NULL AS disabled, created_at, NULL::text AS password_hash
             FROM users WHERE deleted_at IS NULL AND ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT $2",
        )
        .bind(after.map(|u| *u.as_uuid()))
        .bind(i64::from(limit))
        .fetch_all(self.store.pool())
        .await?;
        rows.into_iter()
            .map(|r| r.into_credentials().map(|c| c.user))
            .collect()
    }

    async fn exec(&self, sql: &'static str, user: &UserId, value: Option<&str>) -> Result<()> {
        let done = sqlx::query(sql)
            .bind(user.as_uuid())
            .bind(value)
            .execute(self.store.pool())
            .await?;
        found(done.rows_affected())
    }
}

fn found(rows: u64) -> Result<()> {
    if rows == 0 {
        Err(StoreError::NotFound { entity: "user" })
    } else {
        Ok(())
    }
}
