//! The service the gateway calls: login, refresh, logout, bearer authentication, API keys.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use enclave_domain::{ApiKeyId, Email, Principal, Role, TenantId, UserId};
use enclave_store::{
    Membership, NewApiKey, NewRefreshToken, NewUser, Rotation, Store, TenantAccess, TenantStatus,
    ThrottlePolicy, User, UserStatus,
};
use serde::Serialize;

use crate::AuthError;
use crate::api_key::{ApiKeySecret, CreatedApiKey, NewApiKeyRequest, ParsedApiKey};
use crate::cache::TtlCache;
use crate::jwt::{AccessClaims, KeyRing};
use crate::password::{PasswordHasher, PasswordPolicy};
use crate::secret::{random_token, sha256};

const REFRESH_PREFIX: &str = "ert_";

#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// `iss` of our tokens (e.g. the public base URL).
    pub issuer: String,
    /// `aud` of our tokens.
    pub audience: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub throttle: ThrottlePolicy,
    pub password: PasswordPolicy,
    /// How long a user's active/deleted status, a tenant's suspension and a user's membership
    /// are cached per process. A change made through this Authenticator takes effect at once;
    /// one made elsewhere (another gateway) within this delay.
    pub user_status_ttl: Duration,
    /// How often the signing-key ring is re-read from Postgres.
    pub key_refresh: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            issuer: "enclave".into(),
            audience: "enclave-api".into(),
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            throttle: ThrottlePolicy::default(),
            password: PasswordPolicy::default(),
            user_status_ttl: Duration::from_secs(2),
            key_refresh: Duration::from_secs(30),
        }
    }
}

/// What a successful login or refresh returns (OAuth 2 token-response shape).
#[derive(Clone, Serialize)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Always "Bearer".
    pub token_type: &'static str,
    /// Access-token lifetime in seconds.
    pub expires_in: u64,
    /// Who the tokens stand for.
    pub principal: Principal,
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPair")
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

/// A login attempt. `client_ip` keys the throttle together with the email.
#[derive(Debug, Clone)]
pub struct LoginRequest<'a> {
    pub email: &'a str,
    pub password: &'a str,
    /// Which tenant to act in; may be omitted when the user belongs to exactly one tenant, or
    /// is a platform admin (then the session is platform-wide).
    pub tenant: Option<TenantId>,
    pub client_ip: &'a str,
}

/// Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    cfg: AuthConfig,
    keys: KeyRing,
    passwords: PasswordHasher,
    user_status: TtlCache<UserId, Option<UserStatus>>,
    tenant_access: TtlCache<(TenantId, Option<UserId>), Option<TenantAccess>>,
}

impl Authenticator {
    /// Loads the signing keys (creating the first one on a fresh install).
    pub async fn new(store: Store, cfg: AuthConfig) -> Result<Authenticator, AuthError> {
        let keys = KeyRing::load_or_init(store.clone(), cfg.key_refresh).await?;
        let passwords = PasswordHasher::new(cfg.password)?;
        Ok(Authenticator {
            inner: Arc::new(Inner {
                store,
                keys,
                passwords,
                user_status: TtlCache::new(cfg.user_status_ttl),
                tenant_access: TtlCache::new(cfg.user_status_ttl),
                cfg,
            }),
        })
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn config(&self) -> &AuthConfig {
        &self.inner.cfg
    }

    pub fn key_ring(&self) -> &KeyRing {
        &self.inner.keys
    }

    pub fn passwords(&self) -> &PasswordHasher {
        &self.inner.passwords
    }

    /// Checks a bearer credential: an API key (`enc_...`) or an access token.
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal, AuthError> {
        let bearer = bearer.trim();
        if bearer.starts_with(crate::API_KEY_PREFIX) {
            self.authenticate_api_key(bearer).await
        } else {
            self.authenticate_access_token(bearer).await
        }
    }

    async fn authenticate_api_key(&self, text: &str) -> Result<Principal, AuthError> {
        let parsed = ParsedApiKey::parse(text).ok_or(AuthError::InvalidApiKey)?;
        let Some(stored) = self
            .inner
            .store
            .api_keys()
            .find_by_prefix(parsed.prefix)
            .await?
        else {
            return Err(AuthError::InvalidApiKey);
        };
        if !parsed.matches(&stored.secret_hash) {
            return Err(AuthError::InvalidApiKey);
        }
        let rec = stored.record;
        if rec.revoked_at.is_some() {
            return Err(AuthError::RevokedKey);
        }
        if rec.expires_at.is_some_and(|t| t <= Utc::now()) {
            return Err(AuthError::ExpiredKey);
        }
        match self.tenant_access(&rec.tenant_id, None).await? {
            Some(a) if a.status == TenantStatus::Active => {}
            Some(_) => return Err(AuthError::TenantSuspended),
            None => return Err(AuthError::InvalidApiKey),
        }
        self.touch_key_later(rec.tenant_id, rec.id);
        Ok(Principal::api_key(rec.id, rec.tenant_id, rec.scopes))
    }

    /// Writes `last_used_at` off the request path (throttled to once a minute per key).
    fn touch_key_later(&self, tenant: TenantId, key: ApiKeyId) {
        let store = self.inner.store.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = store.api_keys().touch(&tenant, &key).await {
                    tracing::warn!(error = %e, key = %key, "could not record API key use");
                }
            });
        }
    }

    async fn authenticate_access_token(&self, token: &str) -> Result<Principal, AuthError> {
        let cfg = &self.inner.cfg;
        let claims = self
            .inner
            .keys
            .verify(token, &cfg.issuer, &cfg.audience)
            .await?;
        let user = UserId::parse(&claims.sub).map_err(|_| AuthError::InvalidToken {
            reason: "bad subject",
        })?;
        let role: Role = claims
            .role
            .parse()
            .map_err(|_| AuthError::InvalidToken { reason: "bad role" })?;
        let tenant = claims
            .tenant
            .as_deref()
            .map(TenantId::parse)
            .transpose()
            .map_err(|_| AuthError::InvalidToken {
                reason: "bad tenant",
            })?;
        match self.user_status(&user).await? {
            Some(s) if s.active && (role != Role::PlatformAdmin || s.is_platform_admin) => {}
            _ => return Err(AuthError::UserInactive),
        }
        let role = self.current_role(&user, tenant, role).await?;
        Ok(Principal::user(user, tenant, role))
    }

    /// The role a token's holder has now in the token's tenant. A removed membership ends the
    /// token at once; a changed role applies at once (the token's role is only what it was).
    async fn current_role(
        &self,
        user: &UserId,
        tenant: Option<TenantId>,
        token_role: Role,
    ) -> Result<Role, AuthError> {
        let gone = AuthError::InvalidToken {
            reason: "unknown tenant",
        };
        match (token_role, tenant) {
            (Role::PlatformAdmin, None) => Ok(Role::PlatformAdmin),
            // A platform admin may act inside any tenant, suspended ones included (to fix them).
            (Role::PlatformAdmin, Some(t)) => match self.tenant_access(&t, None).await? {
                Some(_) => Ok(Role::PlatformAdmin),
                None => Err(gone),
            },
            (_, None) => Err(AuthError::InvalidToken {
                reason: "tenant role without a tenant",
            }),
            (_, Some(t)) => match self.tenant_access(&t, Some(user)).await? {
                None => Err(gone),
                Some(a) if a.status != TenantStatus::Active => Err(AuthError::TenantSuspended),
                Some(TenantAccess {
                    member_role: Some(role),
                    ..
                }) => Ok(role),
                Some(_) => Err(AuthError::UserInactive),
            },
        }
    }

    async fn user_status(&self, user: &UserId) -> Result<Option<UserStatus>, AuthError> {
        if let Some(status) = self.inner.user_status.get(user) {
            return Ok(status);
        }
        let status = self.inner.store.users().status(user).await?;
        self.inner.user_status.put(*user, status);
        Ok(status)
    }

    async fn tenant_access(
        &self,
        tenant: &TenantId,
        user: Option<&UserId>,
    ) -> Result<Option<TenantAccess>, AuthError> {
        let key = (*tenant, user.copied());
        if let Some(access) = self.inner.tenant_access.get(&key) {
            return Ok(access);
        }
        let access = self.inner.store.tenants().access(tenant, user).await?;
        self.inner.tenant_access.put(key, access);
        Ok(access)
    }

    /// Drops what this process cached about `user` (after disabling or deleting them, or
    /// changing a membership).
    pub fn forget_user(&self, user: &UserId) {
        self.inner.user_status.forget_where(|u| u == user);
        self.inner
            .tenant_access
            .forget_where(|(_, u)| u.as_ref() == Some(user));
    }

    /// Drops what this process cached about `tenant` (after suspending or resuming it).
    pub fn forget_tenant(&self, tenant: &TenantId) {
        self.inner.tenant_access.forget_where(|(t, _)| t == tenant);
    }

    /// Email + password → tokens, with per-(email, client) exponential backoff on failures.
    pub async fn login(&self, req: LoginRequest<'_>) -> Result<TokenPair, AuthError> {
        let throttle_key = req.email.trim().to_lowercase();
        let throttle = self.inner.store.login_throttle();
        if let Some(state) = throttle.state(&throttle_key, req.client_ip).await?
            && let Some(until) = state.locked_until
            && until > Utc::now()
        {
            let secs = (until - Utc::now())
                .num_milliseconds()
                .max(0)
                .unsigned_abs()
                .div_ceil(1000);
            return Err(AuthError::Throttled {
                retry_after_secs: secs.max(1),
            });
        }
        let user = match self.check_password(req.email, req.password).await? {
            Some(user) => user,
            None => {
                throttle
                    .record_failure(&throttle_key, req.client_ip, &self.inner.cfg.throttle)
                    .await?;
                return Err(AuthError::InvalidCredentials);
            }
        };
        throttle.clear(&throttle_key, req.client_ip).await?;
        let (tenant, role) = self.session_role(&user, req.tenant).await?;
        self.issue_pair(&user.id, tenant, role, uuid::Uuid::now_v7())
            .await
    }

    /// The live, enabled user whose password matches; `None` otherwise, after the same work.
    async fn check_password(&self, email: &str, password: &str) -> Result<Option<User>, AuthError> {
        let passwords = &self.inner.passwords;
        let Ok(email) = Email::parse(email) else {
            passwords.burn(password);
            return Ok(None);
        };
        let creds = self
            .inner
            .store
            .users()
            .credentials_by_email(&email)
            .await?;
        let Some((creds, hash)) = creds.and_then(|c| c.password_hash.clone().map(|h| (c, h)))
        else {
            passwords.burn(password);
            return Ok(None);
        };
        let ok = passwords.verify(password, &hash);
        Ok((ok && !creds.user.disabled).then_some(creds.user))
    }

    /// Which tenant and role the session gets.
    async fn session_role(
        &self,
        user: &User,
        tenant: Option<TenantId>,
    ) -> Result<(Option<TenantId>, Role), AuthError> {
        if user.is_platform_admin {
            return Ok((tenant, Role::PlatformAdmin));
        }
        let memberships: Vec<Membership> =
            self.inner.store.memberships().for_user(&user.id).await?;
        let chosen = match tenant {
            Some(t) => memberships.into_iter().find(|m| m.tenant_id == t),
            None if memberships.len() == 1 => memberships.into_iter().next(),
            None if memberships.is_empty() => None,
            None => return Err(AuthError::TenantRequired),
        };
        // Not a member (or no such tenant): same answer as a wrong password, nothing to probe.
        let m = chosen.ok_or(AuthError::InvalidCredentials)?;
        Ok((Some(m.tenant_id), m.role))
    }

    async fn issue_pair(
        &self,
        user: &UserId,
        tenant: Option<TenantId>,
        role: Role,
        family: uuid::Uuid,
    ) -> Result<TokenPair, AuthError> {
        let refresh = format!("{REFRESH_PREFIX}{}", random_token());
        let new = NewRefreshToken {
            user_id: *user,
            tenant_id: tenant,
            family_id: family,
            token_hash: sha256(refresh.as_bytes()),
            expires_at: Utc::now()
                + chrono::Duration::from_std(self.inner.cfg.refresh_ttl)
                    .unwrap_or(chrono::Duration::days(30)),
        };
        self.inner.store.refresh_tokens().insert(&new).await?;
        self.pair_with(user, tenant, role, refresh).await
    }

    async fn pair_with(
        &self,
        user: &UserId,
        tenant: Option<TenantId>,
        role: Role,
        refresh: String,
    ) -> Result<TokenPair, AuthError> {
        let access_token = self.issue_access_token(user, tenant, role).await?;
        Ok(TokenPair {
            access_token,
            refresh_token: refresh,
            token_type: "Bearer",
            expires_in: self.inner.cfg.access_ttl.as_secs(),
            principal: Principal::user(*user, tenant, role),
        })
    }

    /// A signed access token for `user` acting as `role` in `tenant`.
    pub async fn issue_access_token(
        &self,
        user: &UserId,
        tenant: Option<TenantId>,
        role: Role,
    ) -> Result<String, AuthError> {
        let cfg = &self.inner.cfg;
        let now = Utc::now().timestamp();
        let ttl = i64::try_from(cfg.access_ttl.as_secs()).unwrap_or(900);
        let claims = AccessClaims {
            sub: user.to_string(),
            tenant: tenant.map(|t| t.to_string()),
            role: role.as_str().to_owned(),
            iat: now,
            exp: now + ttl,
            jti: uuid::Uuid::now_v7().to_string(),
            iss: cfg.issuer.clone(),
            aud: cfg.audience.clone(),
        };
        self.inner.keys.sign(&claims).await
    }

    /// Exchanges a refresh token for a new pair. Presenting a token a second time revokes its
    /// whole family (the legitimate holder and the thief both have to log in again).
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, AuthError> {
        let presented = sha256(refresh_token.trim().as_bytes());
        let next = format!("{REFRESH_PREFIX}{}", random_token());
        let placeholder = NewRefreshToken {
            user_id: UserId::from_uuid(uuid::Uuid::nil()),
            tenant_id: None,
            family_id: uuid::Uuid::nil(),
            token_hash: sha256(next.as_bytes()),
            expires_at: Utc::now()
                + chrono::Duration::from_std(self.inner.cfg.refresh_ttl)
                    .unwrap_or(chrono::Duration::days(30)),
        };
        let rotated = match self
            .inner
            .store
            .refresh_tokens()
            .rotate(&presented, placeholder)
            .await?
        {
            Rotation::Rotated { next, .. } => next,
            Rotation::Reused { family_id, user_id } => {
                tracing::warn!(user = %user_id, family = %family_id, "refresh token reuse: session family revoked");
                return Err(AuthError::RefreshTokenReused);
            }
            Rotation::Expired => return Err(AuthError::ExpiredRefreshToken),
            Rotation::Unknown => return Err(AuthError::InvalidRefreshToken),
        };
        // The role is re-derived now: a removed membership or a disabled account ends the session.
        let user = match self.inner.store.users().get(&rotated.user_id).await {
            Ok(u) if !u.disabled => u,
            Ok(_) | Err(enclave_store::StoreError::NotFound { .. }) => {
                return Err(AuthError::UserInactive);
            }
            Err(e) => return Err(e.into()),
        };
        let (tenant, role) = self.session_role(&user, rotated.tenant_id).await?;
        self.pair_with(&user.id, tenant, role, next).await
    }

    /// Ends the session the refresh token belongs to (idempotent; unknown tokens are ignored).
    pub async fn logout(&self, refresh_token: &str) -> Result<(), AuthError> {
        let presented = sha256(refresh_token.trim().as_bytes());
        self.inner
            .store
            .refresh_tokens()
            .revoke_family_of(&presented)
            .await?;
        Ok(())
    }

    /// Creates a key for `tenant`; the returned `key` text is shown once and never stored.
    pub async fn create_api_key(
        &self,
        tenant: &TenantId,
        req: NewApiKeyRequest,
    ) -> Result<CreatedApiKey, AuthError> {
        let secret = ApiKeySecret::generate();
        let record = self
            .inner
            .store
            .api_keys()
            .create(
                tenant,
                NewApiKey {
                    name: req.name,
                    prefix: secret.prefix.clone(),
                    secret_hash: secret.secret_hash,
                    scopes: req.scopes,
                    expires_at: req.expires_at,
                    created_by: req.created_by,
                    requests_per_minute: req.requests_per_minute,
                    tokens_per_minute: req.tokens_per_minute,
                },
            )
            .await?;
        Ok(CreatedApiKey {
            record,
            key: secret.full,
        })
    }

    /// Creates a user with a password (policy-checked, argon2id-hashed).
    pub async fn create_user(
        &self,
        email: &Email,
        password: &str,
        is_platform_admin: bool,
    ) -> Result<User, AuthError> {
        let hash = self.inner.passwords.hash(password)?;
        let user = self
            .inner
            .store
            .users()
            .create(NewUser {
                email: email.clone(),
                password_hash: Some(hash),
                is_platform_admin,
            })
            .await?;
        Ok(user)
    }

    /// Sets a new password and ends every session of the user.
    pub async fn set_password(&self, user: &UserId, password: &str) -> Result<(), AuthError> {
        let hash = self.inner.passwords.hash(password)?;
        self.inner
            .store
            .users()
            .set_password_hash(user, &hash)
            .await?;
        self.inner
            .store
            .refresh_tokens()
            .revoke_all_for_user(user)
            .await?;
        Ok(())
    }

    /// Disables (or re-enables) a user; outstanding access tokens stop working at once here.
    pub async fn set_user_disabled(&self, user: &UserId, disabled: bool) -> Result<(), AuthError> {
        self.inner
            .store
            .users()
            .set_disabled(user, disabled)
            .await?;
        if disabled {
            self.inner
                .store
                .refresh_tokens()
                .revoke_all_for_user(user)
                .await?;
        }
        self.forget_user(user);
        Ok(())
    }

    /// Takes `user` out of `tenant`: their sessions in it end and their access tokens for it are
    /// refused from now on (at once here, within `user_status_ttl` on other gateways).
    pub async fn remove_member(&self, tenant: &TenantId, user: &UserId) -> Result<(), AuthError> {
        self.inner.store.memberships().remove(tenant, user).await?;
        self.inner
            .store
            .refresh_tokens()
            .revoke_for_user_in_tenant(user, tenant)
            .await?;
        self.forget_user(user);
        Ok(())
    }

    /// Suspends or resumes a tenant; its keys and its members' tokens are refused while it is
    /// suspended (at once here, within `user_status_ttl` on other gateways).
    pub async fn set_tenant_status(
        &self,
        tenant: &TenantId,
        status: TenantStatus,
    ) -> Result<enclave_store::Tenant, AuthError> {
        let t = self
            .inner
            .store
            .tenants()
            .set_status(tenant, status)
            .await?;
        self.forget_tenant(tenant);
        Ok(t)
    }

    /// Deletes a user (soft: see `Users::delete`); outstanding tokens stop working at once here.
    pub async fn delete_user(&self, user: &UserId) -> Result<(), AuthError> {
        self.inner.store.users().delete(user).await?;
        self.forget_user(user);
        Ok(())
    }

    /// Makes a new signing key active; tokens signed by the previous one keep verifying.
    pub async fn rotate_signing_key(&self) -> Result<String, AuthError> {
        self.inner.keys.rotate().await
    }
}
