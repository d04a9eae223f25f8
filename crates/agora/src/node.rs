//! `agora node`: set up, enrol and run a node; its status and exchange log.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use agora_model::MemberId;
use agora_node::Node;
use agora_server::ServerConfig;
use anyhow::{Context, Result, bail};
use clap::Subcommand;

use crate::NodeDir;
use crate::cmd::{LogFormat, init_tracing, node_config, open, shutdown_signal};

#[derive(Subcommand)]
pub enum NodeCmd {
    /// Initialise a data directory for a member; prints the administrator token once.
    Init {
        #[command(flatten)]
        dir: NodeDir,
        /// The member id this node belongs to, e.g. employment-agency.
        #[arg(long)]
        member: String,
        /// The organisation's name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Run the node's API server until Ctrl-C or SIGTERM.
    Start {
        #[command(flatten)]
        dir: NodeDir,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:7400")]
        listen: SocketAddr,
        /// Initialise the data directory for this member if it is new.
        #[arg(long)]
        member: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// A local folder whose files API clients may register (repeatable).
        #[arg(long = "allow-path")]
        allow_paths: Vec<PathBuf>,
        /// Largest request body, in bytes.
        #[arg(long, default_value_t = 1024 * 1024)]
        body_limit: usize,
        /// Address of the exchange listener (mutual TLS, for other members); needs an
        /// enrolled node. Its public URL is the one given at enrolment.
        #[arg(long)]
        exchange_listen: Option<SocketAddr>,
        #[arg(long, value_enum, default_value = "json")]
        log_format: LogFormat,
    },
    /// Join an ecosystem: generate this node's key, have the authority certify it.
    Enroll {
        #[command(flatten)]
        dir: NodeDir,
        /// The authority's base URL, e.g. https://authority.example:7300.
        #[arg(long)]
        authority: String,
        /// The one-time enrolment token printed by `agora authority admit`.
        #[arg(long, env = "AGORA_ENROL_TOKEN", hide_env_values = true)]
        token: String,
        /// Where other members reach this node's exchange listener (https://HOST:PORT).
        #[arg(long)]
        exchange_url: String,
    },
    /// Show the node's membership: certificate, trust list, peers.
    Status {
        #[command(flatten)]
        dir: NodeDir,
    },
    /// List the node's exchange log: every request to and from other members, newest
    /// first, with its outcome.
    Exchanges {
        #[command(flatten)]
        dir: NodeDir,
        /// Only exchanges with this member.
        #[arg(long)]
        peer: Option<String>,
        /// How many records to show.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List the access log: every query by this node's own people and tools (API tokens,
    /// web users, the command line, Flight SQL) that read data products, newest first.
    Accesses {
        #[command(flatten)]
        dir: NodeDir,
        /// How many records to show.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Get a certificate for one of this member's client tools (Flight SQL, scripts).
    ClientCert {
        #[command(flatten)]
        dir: NodeDir,
        /// Folder for client.key (mode 0600), client.crt and root.crt.
        #[arg(long)]
        out: PathBuf,
    },
}

impl NodeCmd {
    /// Whether the command runs a server until stopped.
    pub fn serves(&self) -> bool {
        matches!(self, Self::Start { .. })
    }
}

pub async fn node(cmd: NodeCmd) -> Result<()> {
    match cmd {
        NodeCmd::Init { dir, member, name } => init(dir, member, name).await,
        NodeCmd::Start {
            dir,
            listen,
            member,
            name,
            allow_paths,
            body_limit,
            exchange_listen,
            log_format,
        } => {
            init_tracing(log_format, "info");
            let node = open_for_start(&dir, member, name).await?;
            let config = ServerConfig {
                body_limit,
                allowed_roots: allow_paths,
                ..Default::default()
            };
            start(node, listen, exchange_listen, config).await
        }
        NodeCmd::Enroll {
            dir,
            authority,
            token,
            exchange_url,
        } => enroll(dir, authority, token, exchange_url).await,
        NodeCmd::Exchanges {
            dir,
            peer,
            limit,
            json,
        } => exchanges(dir, peer, limit, json).await,
        NodeCmd::Status { dir } => status(dir).await,
        NodeCmd::Accesses { dir, limit, json } => accesses(dir, limit, json).await,
        NodeCmd::ClientCert { dir, out } => {
            let node = open(&dir).await?;
            let files = node.enrolled()?.client_certificate(&out).await?;
            println!(
                "Wrote {} (private key, mode 0600), {} and {}; fingerprint {}.",
                files.key.display(),
                files.certificate.display(),
                files.root.display(),
                files.fingerprint
            );
            Ok(())
        }
    }
}

async fn init(dir: NodeDir, member: String, name: Option<String>) -> Result<()> {
    let member = MemberId::parse(&member)?;
    let name = name.unwrap_or_else(|| member.to_string());
    let (node, token) = Node::init(&node_config(&dir), &member, &name).await?;
    println!(
        "Initialised node for member {} in {}.",
        node.member(),
        dir.data_dir.display()
    );
    print_new_token(&token.secret);
    Ok(())
}

/// The node to start: the one in `dir`, initialised first for `member` if it is new.
async fn open_for_start(
    dir: &NodeDir,
    member: Option<String>,
    name: Option<String>,
) -> Result<Node> {
    let cfg = node_config(dir);
    let Some(m) = member else {
        return Ok(Node::open(&cfg).await?);
    };
    let member = MemberId::parse(&m)?;
    let name = name.unwrap_or_else(|| member.to_string());
    let (node, token) = Node::open_or_init(&cfg, &member, &name).await?;
    if let Some(t) = token {
        print_new_token(&t.secret);
    }
    Ok(node)
}

/// Serves the API (and the exchange listener, membership and negotiation timers of an
/// enrolled node) until Ctrl-C or SIGTERM, or until one of them fails.
async fn start(
    node: Node,
    listen: SocketAddr,
    exchange_listen: Option<SocketAddr>,
    config: ServerConfig,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    eprintln!(
        "Agora node {} listening on http://{}",
        node.member(),
        listener.local_addr()?
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(addr) = exchange_listen {
        node.enrolled()?;
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        eprintln!(
            "Exchange listener (mutual TLS) on https://{}",
            l.local_addr()?
        );
        let (n, s) = (node.clone(), stopped());
        tasks.spawn(async move {
            agora_server::serve_exchange(n, l, s)
                .await
                .map_err(anyhow::Error::from)
        });
    }
    if node.trust().is_some() {
        let (n, s) = (node.clone(), stopped());
        tasks.spawn(async move {
            n.run_membership(s).await;
            Ok(())
        });
        let (n, s) = (node.clone(), stopped());
        tasks.spawn(async move {
            n.run_negotiations(std::time::Duration::from_secs(5), s)
                .await;
            Ok(())
        });
        let (n, s) = (node.clone(), stopped());
        tasks.spawn(async move {
            n.run_checkpoints(s).await;
            Ok(())
        });
    }
    let (n, s) = (node.clone(), stopped());
    tasks.spawn(async move {
        agora_server::serve(n, listener, config, s)
            .await
            .map_err(anyhow::Error::from)
    });
    // Until Ctrl-C, or until one server fails (then the others stop too).
    let mut first = None;
    tokio::select! {
        () = shutdown_signal() => {}
        Some(r) = tasks.join_next() => first = Some(r),
    }
    let _ = stop_tx.send(true);
    if let Some(r) = first {
        r??;
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    // Exchange records still queued are written before the process ends.
    tokio::task::yield_now().await;
    node.store().close().await;
    eprintln!("Node stopped.");
    Ok(())
}

async fn enroll(
    dir: NodeDir,
    authority: String,
    token: String,
    exchange_url: String,
) -> Result<()> {
    let node = open(&dir).await?;
    let token: agora_trust::EnrolmentToken = token.parse()?;
    agora_authority_host(&exchange_url)?;
    let t = node
        .enrol(
            &authority,
            &token,
            agora_model::Endpoints {
                exchange: Some(exchange_url),
            },
        )
        .await?;
    let m = t.material();
    println!(
        "Node {} enrolled in ecosystem {}; certificate {} valid until {}.",
        node.member(),
        m.info.ecosystem,
        m.info.serial,
        m.info.not_after
    );
    Ok(())
}

/// Writes log records, newest first: one JSON object per line, or one line of text each
/// (and `none` when there are none).
fn print_records<T: serde::Serialize>(
    records: &[T],
    json: bool,
    none: &str,
    line: impl Fn(&T) -> String,
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for r in records {
        if json {
            writeln!(out, "{}", serde_json::to_string(r)?)?;
        } else {
            writeln!(out, "{}", line(r))?;
        }
    }
    if records.is_empty() && !json {
        writeln!(out, "{none}")?;
    }
    Ok(())
}

async fn exchanges(dir: NodeDir, peer: Option<String>, limit: u32, json: bool) -> Result<()> {
    let node = open(&dir).await?;
    let peer = peer.map(|p| MemberId::parse(&p)).transpose()?;
    let records = node.store().exchanges(peer.as_ref(), limit).await?;
    print_records(&records, json, "No exchanges recorded.", |r| {
        format!(
            "{:>6}  {}  {:<8} {:<22} {:<28} {:>7} rows  {}",
            r.seq,
            r.requested_at.format("%Y-%m-%d %H:%M:%S"),
            r.direction.as_str(),
            r.peer,
            r.operation,
            r.rows,
            r.outcome
        )
    })
}

async fn accesses(dir: NodeDir, limit: u32, json: bool) -> Result<()> {
    let node = open(&dir).await?;
    let records = node.accesses(limit).await?;
    print_records(&records, json, "No accesses recorded.", |r| {
        let under = if r.agreements.is_empty() {
            String::new()
        } else {
            format!("  (under {})", r.agreements)
        };
        format!(
            "{}  {:<6} {:<28} {:<40} {:>7} rows  {}{under}",
            r.started_at.format("%Y-%m-%d %H:%M:%S"),
            r.channel,
            r.principal,
            r.products,
            r.rows_returned,
            r.outcome
        )
    })
}

async fn status(dir: NodeDir) -> Result<()> {
    let node = open(&dir).await?;
    println!("member: {} ({})", node.member(), node.name());
    let Some(t) = node.trust() else {
        println!("ecosystem: not enrolled (run `agora node enroll`)");
        return Ok(());
    };
    let m = t.material();
    let list = t.list();
    println!("ecosystem: {}", m.info.ecosystem);
    let renewal = if t.renewal_due(chrono::Utc::now()) {
        " (renewal due)"
    } else {
        ""
    };
    let day = |d: chrono::DateTime<chrono::Utc>| d.format("%Y-%m-%d %H:%M UTC").to_string();
    println!(
        "certificate: serial {}, issued {}, expires {}{renewal}",
        m.info.serial,
        day(m.info.not_before),
        day(m.info.not_after),
    );
    println!("authority: {}", list.authority_url);
    use agora_node::trust::ListStatus;
    let state = match t.status(chrono::Utc::now()) {
        ListStatus::Valid {
            sequence,
            expires_at,
        } => format!("valid (number {sequence}, until {})", day(expires_at)),
        ListStatus::Grace {
            sequence,
            expired_at,
            serving_until,
        } => format!(
            "expired at {} (number {sequence}); still used until {} while the node fetches a new one",
            day(expired_at),
            day(serving_until)
        ),
        ListStatus::Expired {
            sequence,
            expired_at,
        } => format!(
            "EXPIRED at {} (number {sequence}): the node neither serves nor calls other members until it gets a new one",
            day(expired_at)
        ),
    };
    println!("trust list: {state}");
    match t.own_standing_problem() {
        Some(problem) => println!("standing: {problem}"),
        None => println!("standing: in good standing: other members accept this node"),
    }
    for member in &list.members {
        let endpoint = member
            .endpoints
            .exchange
            .as_deref()
            .unwrap_or("no endpoint");
        println!("  {} ({}): {endpoint}", member.id, member.name);
    }
    Ok(())
}

fn agora_authority_host(url: &str) -> Result<()> {
    if agora_model::https_host(url).is_none() {
        bail!("--exchange-url {url:?} must be an https:// URL with a host");
    }
    Ok(())
}

fn print_new_token(secret: &str) {
    println!("Administrator API token (shown only now; store it safely):");
    println!("  {secret}");
}
