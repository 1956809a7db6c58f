//! A small client for the routes the end-to-end tests walk through (shapes: /work/notes/gw-api.md,
//! the OpenAPI document at `/openapi.json`). Every call returns the status, headers and body so
//! a failed expectation can show what the server said.

use std::time::Duration;

use anyhow::{Context as _, bail};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Generation on a loaded 2-core machine can be slow; nothing here is a timing assertion.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// What the server answered.
#[derive(Debug)]
pub struct ApiResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl ApiResponse {
    /// The body as JSON, or an error quoting it.
    pub fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_str(&self.body).with_context(|| format!("body is not JSON: {}", self.body))
    }

    /// The JSON body when the status is `want`; otherwise an error with status and body.
    pub fn expect(&self, want: StatusCode) -> anyhow::Result<Value> {
        if self.status != want {
            bail!("expected {want}, got {}: {}", self.status, self.body);
        }
        if self.body.is_empty() {
            return Ok(Value::Null);
        }
        self.json()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `error.code` of an error body.
    pub fn error_code(&self) -> Option<String> {
        self.json()
            .ok()?
            .pointer("/error/code")?
            .as_str()
            .map(str::to_owned)
    }
}

/// A credential-less client bound to one server.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
}

/// Tokens of a login (`token_response`).
#[derive(Debug, Clone)]
pub struct Session {
    pub access_token: String,
    pub refresh_token: String,
    pub body: Value,
}

fn str_at(v: &Value, pointer: &str) -> anyhow::Result<String> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("no string at {pointer} in {v}"))
}

impl Api {
    pub fn new(base: impl Into<String>) -> anyhow::Result<Api> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        Ok(Api {
            http,
            base: base.into(),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with an optional bearer credential, ready for a body and `send`.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, self.url(path));
        match bearer {
            Some(b) => rb.bearer_auth(b),
            None => rb,
        }
    }

    pub async fn send(&self, rb: reqwest::RequestBuilder) -> anyhow::Result<ApiResponse> {
        let resp = rb.send().await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.text().await?;
        Ok(ApiResponse {
            status,
            headers,
            body,
        })
    }

    /// A JSON request (`body` `None` sends none).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<ApiResponse> {
        let mut rb = self.request(method, path, bearer);
        if let Some(b) = body {
            rb = rb.json(b);
        }
        self.send(rb).await
    }

    pub async fn login(
        &self,
        email: &str,
        password: &str,
        tenant: Option<&str>,
    ) -> anyhow::Result<Session> {
        let mut body = json!({"email": email, "password": password});
        if let Some(t) = tenant {
            body["tenant"] = json!(t);
        }
        let r = self
            .call(Method::POST, "/v1/auth/login", None, Some(&body))
            .await?;
        let v = r.expect(StatusCode::OK).context("login")?;
        Ok(Session {
            access_token: str_at(&v, "/access_token")?,
            refresh_token: str_at(&v, "/refresh_token")?,
            body: v,
        })
    }

    /// `POST /v1/tenants` as a platform admin; returns the tenant's id.
    pub async fn create_tenant(
        &self,
        admin: &str,
        slug: &str,
        name: &str,
    ) -> anyhow::Result<String> {
        let r = self
            .call(
                Method::POST,
                "/v1/tenants",
                Some(admin),
                Some(&json!({"slug": slug, "name": name})),
            )
            .await?;
        let v = r.expect(StatusCode::CREATED).context("create tenant")?;
        str_at(&v, "/id")
    }

    /// `POST /v1/tenants/{id}/users`; returns the user's id.
    pub async fn create_user(
        &self,
        bearer: &str,
        tenant: &str,
        email: &str,
        password: &str,
        role: &str,
    ) -> anyhow::Result<String> {
        let body = json!({"email": email, "password": password, "role": role});
        let r = self
            .call(
                Method::POST,
                &format!("/v1/tenants/{tenant}/users"),
                Some(bearer),
                Some(&body),
            )
            .await?;
        let v = r.expect(StatusCode::CREATED).context("create user")?;
        str_at(&v, "/id")
    }

    /// `POST /v1/tenants/{id}/api-keys` with `body`; returns (secret, created_api_key).
    pub async fn create_api_key(
        &self,
        bearer: &str,
        tenant: &str,
        body: &Value,
    ) -> anyhow::Result<(String, Value)> {
        let r = self
            .call(
                Method::POST,
                &format!("/v1/tenants/{tenant}/api-keys"),
                Some(bearer),
                Some(body),
            )
            .await?;
        let v = r.expect(StatusCode::CREATED).context("create API key")?;
        Ok((str_at(&v, "/secret")?, v))
    }

    /// The id of the first model in `GET /v1/models`.
    pub async fn model_id(&self, bearer: &str) -> anyhow::Result<String> {
        let r = self
            .call(Method::GET, "/v1/models", Some(bearer), None)
            .await?;
        let v = r.expect(StatusCode::OK).context("list models")?;
        str_at(&v, "/data/0/id")
    }

    pub async fn chat(&self, bearer: &str, body: &Value) -> anyhow::Result<ApiResponse> {
        self.call(
            Method::POST,
            "/v1/chat/completions",
            Some(bearer),
            Some(body),
        )
        .await
    }
}

/// A tenant set up the way an operator and a tenant admin would: platform admin logs in,
/// creates the tenant and its admin; the tenant admin logs in and creates an inference key.
#[derive(Debug, Clone)]
pub struct TenantFixture {
    pub tenant_id: String,
    pub slug: String,
    pub admin_email: String,
    pub admin_password: String,
    /// The tenant admin's access token.
    pub admin_token: String,
    /// An `inference` API key (the secret).
    pub api_key: String,
    pub model: String,
}

impl TenantFixture {
    /// Walks the set-up over HTTP with `platform_admin`'s access token.
    pub async fn create(api: &Api, platform_admin: &str) -> anyhow::Result<TenantFixture> {
        let slug = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let tenant_id = api
            .create_tenant(platform_admin, &slug, &format!("Tenant {slug}"))
            .await?;
        let admin_email = format!("admin@{slug}.example.com");
        let admin_password = format!("tenant admin password {slug}");
        api.create_user(
            platform_admin,
            &tenant_id,
            &admin_email,
            &admin_password,
            "tenant_admin",
        )
        .await?;
        let session = api
            .login(&admin_email, &admin_password, Some(&slug))
            .await?;
        let (api_key, _) = api
            .create_api_key(
                &session.access_token,
                &tenant_id,
                &json!({"name": "e2e", "scopes": ["inference"]}),
            )
            .await?;
        let model = api.model_id(&api_key).await?;
        Ok(TenantFixture {
            tenant_id,
            slug,
            admin_email,
            admin_password,
            admin_token: session.access_token,
            api_key,
            model,
        })
    }
}
