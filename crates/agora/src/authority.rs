//! `agora authority`: create and run an ecosystem authority.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use agora_authority::{Authority, AuthorityConfig};
use agora_model::MemberId;
use agora_model::https_host as host_of;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use crate::cmd::{LogFormat, init_tracing, shutdown_signal};

/// Where the authority keeps its state.
#[derive(Args, Clone, Debug)]
pub struct AuthorityDir {
    /// The authority's data directory (root key, records).
    #[arg(long, env = "AGORA_AUTHORITY_DIR", default_value = "agora-authority")]
    pub data_dir: PathBuf,
    /// Metadata store URL (postgres://...); by default SQLite in the data directory.
    #[arg(
        long = "store",
        env = "AGORA_AUTHORITY_STORE_URL",
        hide_env_values = true
    )]
    pub store_url: Option<String>,
}

/// Lifetimes the authority gives out.
#[derive(Args, Clone, Debug)]
pub struct Lifetimes {
    /// Validity of member certificates, in days.
    #[arg(long, default_value_t = 30)]
    cert_days: i64,
    /// Validity of each published trust list, in minutes.
    #[arg(long, default_value_t = 60)]
    list_minutes: i64,
    /// Validity of enrolment tokens, in hours.
    #[arg(long, default_value_t = 24)]
    token_hours: i64,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            cert_days: 30,
            list_minutes: 60,
            token_hours: 24,
        }
    }
}

pub fn config(dir: &AuthorityDir, life: &Lifetimes) -> Result<AuthorityConfig> {
    if life.cert_days < 1 || life.list_minutes < 1 || life.token_hours < 1 {
        bail!("lifetimes must be at least 1 (day, minute, hour)");
    }
    let mut cfg = AuthorityConfig::new(&dir.data_dir);
    cfg.store_url = dir.store_url.clone();
    cfg.certificate_validity = chrono::Duration::days(life.cert_days);
    cfg.list_validity = chrono::Duration::minutes(life.list_minutes);
    cfg.token_validity = chrono::Duration::hours(life.token_hours);
    Ok(cfg)
}

#[derive(Subcommand)]
pub enum AuthorityCmd {
    /// Create a new ecosystem: its root key (mode 0600) and certificate.
    Init {
        #[command(flatten)]
        dir: AuthorityDir,
        /// The ecosystem's id, e.g. demo-ecosystem.
        #[arg(long)]
        ecosystem: String,
        /// The authority's public base URL, published in the trust list.
        #[arg(long, default_value = "https://127.0.0.1:7300")]
        url: String,
    },
    /// Admit a member and print its one-time enrolment token.
    Admit {
        #[command(flatten)]
        dir: AuthorityDir,
        #[command(flatten)]
        life: Lifetimes,
        /// The member id, e.g. tax-office.
        member: String,
        /// The organisation's name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Revoke a member (every certificate it holds) or a single certificate.
    Revoke {
        #[command(flatten)]
        dir: AuthorityDir,
        /// The member to revoke.
        member: Option<String>,
        /// Revoke only the certificate with this SHA-256 fingerprint.
        #[arg(long, conflicts_with = "member")]
        certificate: Option<String>,
        #[arg(long, default_value = "revoked by the authority")]
        reason: String,
    },
    /// List members and their certificates.
    Members {
        #[command(flatten)]
        dir: AuthorityDir,
    },
    /// Print the current signed trust list.
    TrustList {
        #[command(flatten)]
        dir: AuthorityDir,
        #[command(flatten)]
        life: Lifetimes,
    },
    /// Serve enrolment, certificates and the trust list over HTTPS until Ctrl-C.
    Serve {
        #[command(flatten)]
        dir: AuthorityDir,
        #[command(flatten)]
        life: Lifetimes,
        #[arg(long, default_value = "127.0.0.1:7300")]
        listen: SocketAddr,
        /// Change the public base URL published in the trust list.
        #[arg(long)]
        url: Option<String>,
        #[arg(long, value_enum, default_value = "json")]
        log_format: LogFormat,
    },
}

impl AuthorityCmd {
    /// Whether the command runs a server until stopped.
    pub fn serves(&self) -> bool {
        matches!(self, Self::Serve { .. })
    }
}

pub async fn run(cmd: AuthorityCmd) -> Result<()> {
    match cmd {
        AuthorityCmd::Init {
            dir,
            ecosystem,
            url,
        } => init(&dir, &ecosystem, &url).await,
        AuthorityCmd::Admit {
            dir,
            life,
            member,
            name,
        } => admit(&dir, &life, &member, name).await,
        AuthorityCmd::Revoke {
            dir,
            member,
            certificate,
            reason,
        } => revoke(&dir, member, certificate, &reason).await,
        AuthorityCmd::Members { dir } => members(&dir).await,
        AuthorityCmd::TrustList { dir, life } => {
            let a = Authority::open(config(&dir, &life)?).await?;
            println!("{}", serde_json::to_string_pretty(&a.trust_list().await?)?);
            Ok(())
        }
        AuthorityCmd::Serve {
            dir,
            life,
            listen,
            url,
            log_format,
        } => serve(&dir, &life, listen, url, log_format).await,
    }
}

async fn init(dir: &AuthorityDir, ecosystem: &str, url: &str) -> Result<()> {
    host_of(url).with_context(|| format!("--url {url:?} must be an https:// URL"))?;
    let a = Authority::init(config(dir, &Lifetimes::default())?, ecosystem, url).await?;
    println!(
        "Created ecosystem {} in {}.",
        a.ecosystem(),
        dir.data_dir.display()
    );
    println!(
        "Root certificate fingerprint (SHA-256): {}",
        a.root().info.fingerprint
    );
    println!("Admit members with `agora authority admit MEMBER --name NAME`.");
    Ok(())
}

async fn admit(
    dir: &AuthorityDir,
    life: &Lifetimes,
    member: &str,
    name: Option<String>,
) -> Result<()> {
    let a = Authority::open(config(dir, life)?).await?;
    let member = MemberId::parse(member)?;
    let name = name.unwrap_or_else(|| member.to_string());
    let token = a.admit(&member, &name).await?;
    let url = a.record().await?.url;
    println!(
        "Admitted {member} ({name}). One-time enrolment token (valid {} hours):",
        life.token_hours
    );
    println!("  {token}");
    println!("On the member's node run:");
    println!(
        "  agora node enroll --authority {url} --token <the token above> --exchange-url https://HOST:PORT"
    );
    Ok(())
}

async fn revoke(
    dir: &AuthorityDir,
    member: Option<String>,
    certificate: Option<String>,
    reason: &str,
) -> Result<()> {
    let a = Authority::open(config(dir, &Lifetimes::default())?).await?;
    match (member, certificate) {
        (Some(m), None) => {
            let m = MemberId::parse(&m)?;
            let n = a.revoke_member(&m, reason).await?;
            println!(
                "Revoked member {m} and its {}; the next trust list says so.",
                crate::output::plural(n as u64, "certificate")
            );
        }
        (None, Some(fp)) => {
            a.revoke_certificate(&fp.to_ascii_lowercase(), reason)
                .await?;
            println!("Revoked certificate {fp}; the next trust list says so.");
        }
        _ => bail!("name a MEMBER to revoke, or --certificate FINGERPRINT"),
    }
    Ok(())
}

/// The members and their certificates, as a table.
async fn members(dir: &AuthorityDir) -> Result<()> {
    let a = Authority::open(config(dir, &Lifetimes::default())?).await?;
    let certs = a.certificates().await?;
    let mut t = crate::output::table(&[
        "member",
        "name",
        "status",
        "certificates",
        "exchange endpoint",
    ]);
    for m in a.members().await? {
        let status = match &m.revoked_at {
            Some(at) => format!("revoked {}", at.format("%Y-%m-%d %H:%M")),
            None => "active".into(),
        };
        let mine: Vec<String> = certs
            .iter()
            .filter(|c| c.member == m.id)
            .map(|c| {
                format!(
                    "{} {} until {}{}",
                    c.kind.as_str(),
                    &c.fingerprint[..16],
                    c.not_after.format("%Y-%m-%d"),
                    if c.revoked_at.is_some() {
                        " (revoked)"
                    } else {
                        ""
                    }
                )
            })
            .collect();
        t.add_row(vec![
            m.id.to_string(),
            m.name.clone(),
            status,
            mine.join("\n"),
            m.endpoints.exchange.clone().unwrap_or_default(),
        ]);
    }
    println!("{t}");
    Ok(())
}

async fn serve(
    dir: &AuthorityDir,
    life: &Lifetimes,
    listen: SocketAddr,
    url: Option<String>,
    log_format: LogFormat,
) -> Result<()> {
    init_tracing(log_format, "info");
    let a = Arc::new(Authority::open(config(dir, life)?).await?);
    if let Some(u) = &url {
        host_of(u).with_context(|| format!("--url {u:?} must be an https:// URL"))?;
        a.set_url(u).await?;
    }
    let url = a.record().await?.url;
    let host = host_of(&url).context("the authority URL has no host")?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    eprintln!(
        "Agora authority of {} listening on https://{} (published as {url})",
        a.ecosystem(),
        listener.local_addr()?
    );
    agora_server::serve_authority(a, listener, vec![host], shutdown_signal()).await?;
    eprintln!("Authority stopped.");
    Ok(())
}
