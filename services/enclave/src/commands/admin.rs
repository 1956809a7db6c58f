//! `enclave admin`: bootstrap a fresh install (the first platform admin, the first tenants)
//! against the same database `enclave serve` uses. Prints what it created as one JSON object.
//!
//! With the embedded cluster, run these while `enclave serve` is stopped (the cluster under the
//! data directory has one owner at a time); with `DATABASE_URL` they may run any time.

use std::io::BufRead as _;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use enclave_auth::{Authenticator, generate_password};
use enclave_domain::{Email, Role, TenantSlug};
use enclave_gateway::Settings;
use enclave_store::NewTenant;
use serde_json::{Value, json};

#[derive(Args, Debug)]
pub struct AdminArgs {
    /// Configuration file (TOML), as for `enclave serve`.
    #[arg(long, env = "ENCLAVE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Local state directory holding the embedded PostgreSQL cluster, as for `enclave serve`.
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// An external PostgreSQL server instead of the embedded one.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Creates a platform administrator (all tenants). Without --password-stdin a random
    /// password is generated and printed once.
    CreatePlatformAdmin {
        #[arg(long)]
        email: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Creates a tenant, optionally with its first tenant admin.
    CreateTenant {
        /// Display name.
        #[arg(long)]
        name: String,
        /// URL-safe identifier (lowercase letters, digits, `-`); derived from the name if absent.
        #[arg(long)]
        slug: Option<String>,
        /// Email of the tenant's first admin (created with the tenant_admin role).
        #[arg(long)]
        admin_email: Option<String>,
        /// Read the admin's password from the first line of standard input.
        #[arg(long, requires = "admin_email")]
        admin_password_stdin: bool,
    },
    /// Makes a new JWT signing key active; tokens signed by the previous one keep verifying.
    RotateSigningKey,
}

pub fn run(args: AdminArgs) -> anyhow::Result<()> {
    let mut settings = Settings::load(args.config.as_deref())?;
    if let Some(dir) = &args.data_dir {
        settings.database.data_dir = dir.clone();
    }
    let url = args.database_url.clone().or_else(|| {
        settings
            .database
            .url
            .as_ref()
            .map(|s| s.expose().to_owned())
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut db = super::serve::open_database(&settings, url.as_deref()).await?;
        let result = async {
            let auth = Authenticator::new(db.store.clone(), settings.auth.to_auth_config())
                .await
                .context("loading the JWT signing keys")?;
            execute(&auth, args.command).await
        }
        .await;
        if let Some(pg) = db.embedded.as_mut() {
            pg.stop()
                .context("stopping the embedded PostgreSQL cluster")?;
        }
        println!("{}", result?);
        Ok(())
    })
}

async fn execute(auth: &Authenticator, command: AdminCommand) -> anyhow::Result<Value> {
    match command {
        AdminCommand::CreatePlatformAdmin {
            email,
            password_stdin,
        } => {
            let email = Email::parse(&email).context("--email")?;
            let (password, generated) = password(password_stdin)?;
            let user = auth
                .create_user(&email, &password, true)
                .await
                .context("creating the platform admin")?;
            let mut out = json!({"user_id": user.id.to_string(), "email": email.as_str()});
            if generated {
                out["password"] = json!(password);
            }
            Ok(out)
        }
        AdminCommand::CreateTenant {
            name,
            slug,
            admin_email,
            admin_password_stdin,
        } => create_tenant(auth, name, slug, admin_email, admin_password_stdin).await,
        AdminCommand::RotateSigningKey => {
            let kid = auth
                .rotate_signing_key()
                .await
                .context("rotating the signing key")?;
            Ok(json!({"kid": kid}))
        }
    }
}

async fn create_tenant(
    auth: &Authenticator,
    name: String,
    slug: Option<String>,
    admin_email: Option<String>,
    admin_password_stdin: bool,
) -> anyhow::Result<Value> {
    let slug_text = slug.unwrap_or_else(|| slug_from_name(&name));
    let slug = TenantSlug::parse(&slug_text)
        .with_context(|| format!("slug {slug_text:?} (pass --slug)"))?;
    // Check the admin's input before creating anything, so a typo leaves no half-made tenant.
    let admin = admin_email
        .map(|e| Email::parse(&e).context("--admin-email"))
        .transpose()?
        .map(|email| password(admin_password_stdin).map(|p| (email, p)))
        .transpose()?;
    let store = auth.store();
    let tenant = store
        .tenants()
        .create(NewTenant { slug, name })
        .await
        .context("creating the tenant")?;
    let mut out = json!({"tenant_id": tenant.id.to_string(), "slug": tenant.slug.as_str(), "admin_user_id": null});
    if let Some((email, (password, generated))) = admin {
        let user = auth
            .create_user(&email, &password, false)
            .await
            .context("creating the tenant admin")?;
        store
            .memberships()
            .upsert(&tenant.id, &user.id, Role::TenantAdmin)
            .await
            .context("making the user the tenant's admin")?;
        out["admin_user_id"] = json!(user.id.to_string());
        out["admin_email"] = json!(email.as_str());
        if generated {
            out["admin_password"] = json!(password);
        }
    }
    Ok(out)
}

/// The password from stdin's first line, or a generated one (`true`).
fn password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if !from_stdin {
        return Ok((generate_password(), true));
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!("no password on stdin");
    }
    Ok((password, false))
}

/// `Acme Corp.` → `acme-corp`.
fn slug_from_name(name: &str) -> String {
    let mut slug = String::new();
    for c in name.trim().chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    slug.truncate(40);
    slug.trim_end_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_derive_from_names() {
        for (name, slug) in [
            ("Acme Corp.", "acme-corp"),
            ("  Big   Bank  ", "big-bank"),
            ("Ünïcode Ltd", "n-code-ltd"),
        ] {
            assert_eq!(slug_from_name(name), slug, "{name}");
        }
        assert!(TenantSlug::parse(&slug_from_name("Acme Corp.")).is_ok());
    }
}
