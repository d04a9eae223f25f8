//! Commands that act on one node's data directory.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use agora_model::{
    Classification, ColumnAnnotation, ColumnRole, MemberId, MetadataPatch, PageRequest, Retention,
    SourceFormat, Theme, UpdateFrequency,
};
use agora_node::{ApiRole, Node, NodeConfig, OutputFormat, ProfileProgress, RegisterRequest};
use agora_server::ServerConfig;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};

use crate::NodeDir;
use crate::output;

pub fn node_config(dir: &NodeDir) -> NodeConfig {
    let mut cfg = NodeConfig::new(&dir.data_dir);
    cfg.store_url = dir.store_url.clone();
    cfg.locations = agora_node::LocationPolicy {
        remote_prefixes: dir.allow_remote.clone(),
        allow_private_addresses: dir.allow_private_addresses,
    };
    cfg
}

pub(crate) async fn open(dir: &NodeDir) -> Result<Node> {
    Ok(Node::open(&node_config(dir)).await?)
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// Logs to stderr; `AGORA_LOG` (e.g. `debug`, `agora_server=debug`) overrides the level.
pub fn init_tracing(format: LogFormat, default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("AGORA_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

// ---------------- node ----------------

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
    /// Get a certificate for one of this member's client tools (Flight SQL, scripts).
    ClientCert {
        #[command(flatten)]
        dir: NodeDir,
        /// Folder for client.key (mode 0600), client.crt and root.crt.
        #[arg(long)]
        out: PathBuf,
    },
}

pub async fn node(cmd: NodeCmd) -> Result<()> {
    match cmd {
        NodeCmd::Init { dir, member, name } => {
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
            let cfg = node_config(&dir);
            let node = match member {
                Some(m) => {
                    let member = MemberId::parse(&m)?;
                    let name = name.unwrap_or_else(|| member.to_string());
                    let (node, token) = Node::open_or_init(&cfg, &member, &name).await?;
                    if let Some(t) = token {
                        print_new_token(&t.secret);
                    }
                    node
                }
                None => Node::open(&cfg).await?,
            };
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            eprintln!(
                "Agora node {} listening on http://{}",
                node.member(),
                listener.local_addr()?
            );
            let config = ServerConfig {
                body_limit,
                allowed_roots: allow_paths,
                ..Default::default()
            };
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
        NodeCmd::Enroll {
            dir,
            authority,
            token,
            exchange_url,
        } => {
            let node = open(&dir).await?;
            let token: agora_node::EnrolmentToken = token.parse()?;
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
        NodeCmd::Exchanges {
            dir,
            peer,
            limit,
            json,
        } => {
            let node = open(&dir).await?;
            let peer = peer.map(|p| MemberId::parse(&p)).transpose()?;
            let records = node.store().exchanges(peer.as_ref(), limit).await?;
            let mut out = std::io::stdout().lock();
            for r in &records {
                if json {
                    writeln!(out, "{}", serde_json::to_string(r)?)?;
                } else {
                    writeln!(
                        out,
                        "{:>6}  {}  {:<8} {:<22} {:<28} {:>7} rows  {}",
                        r.seq,
                        r.requested_at.format("%Y-%m-%d %H:%M:%S"),
                        r.direction.as_str(),
                        r.peer,
                        r.operation,
                        r.rows,
                        r.outcome
                    )?;
                }
            }
            if records.is_empty() && !json {
                writeln!(out, "No exchanges recorded.")?;
            }
            Ok(())
        }
        NodeCmd::Status { dir } => {
            let node = open(&dir).await?;
            println!("member: {} ({})", node.member(), node.name());
            match node.trust() {
                None => println!("ecosystem: not enrolled (run `agora node enroll`)"),
                Some(t) => {
                    let m = t.material();
                    let list = t.list();
                    println!("ecosystem: {}", m.info.ecosystem);
                    println!(
                        "certificate: {} valid {} to {}{}",
                        m.info.serial,
                        m.info.not_before,
                        m.info.not_after,
                        if t.renewal_due(chrono::Utc::now()) {
                            " (renewal due)"
                        } else {
                            ""
                        }
                    );
                    println!("authority: {}", list.authority_url);
                    println!(
                        "trust list: {}",
                        serde_json::to_string(&t.status(chrono::Utc::now()))?
                    );
                    for member in &list.members {
                        println!(
                            "  {} ({}): {}",
                            member.id,
                            member.name,
                            member
                                .endpoints
                                .exchange
                                .as_deref()
                                .unwrap_or("no endpoint")
                        );
                    }
                }
            }
            Ok(())
        }
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

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

// ---------------- products ----------------

#[derive(Args, Default, Debug)]
pub struct MetaArgs {
    /// Title shown in the catalog.
    #[arg(long)]
    title: Option<String>,
    #[arg(long)]
    description: Option<String>,
    /// Contact address for questions about the product.
    #[arg(long)]
    contact: Option<String>,
    /// A keyword (repeatable).
    #[arg(long = "keyword")]
    keywords: Vec<String>,
    /// A DCAT-AP data theme code such as ECON, SOCI, HEAL (repeatable).
    #[arg(long = "theme")]
    themes: Vec<String>,
    /// open, internal, personal or sensitive.
    #[arg(long)]
    classification: Option<String>,
    /// The role of a column, as COLUMN=ROLE (repeatable); roles: subject_id,
    /// direct_identifier, quasi_identifier, sensitive, none.
    #[arg(long = "role", value_name = "COLUMN=ROLE")]
    roles: Vec<String>,
    /// Legal basis for holding and sharing the data.
    #[arg(long)]
    legal_basis: Option<String>,
    /// Retention period as an ISO 8601 duration, e.g. P10Y.
    #[arg(long)]
    retention: Option<String>,
    /// continuous, hourly, daily, weekly, monthly, quarterly, annual, irregular or never.
    #[arg(long)]
    update_frequency: Option<String>,
    /// A purpose other members may request the product for (repeatable), from the
    /// purposes vocabulary: job_matching, fraud_prevention, debt_recovery,
    /// public_health_research, official_statistics, welfare_targeting, emergency_response,
    /// service_delivery.
    #[arg(long = "purpose")]
    purposes: Vec<String>,
}

impl MetaArgs {
    fn into_patch(self) -> Result<MetadataPatch> {
        let mut columns = BTreeMap::new();
        for r in &self.roles {
            let (col, role) = r
                .split_once('=')
                .with_context(|| format!("--role {r:?}: write it as COLUMN=ROLE"))?;
            columns.insert(
                col.trim().to_owned(),
                ColumnAnnotation {
                    role: role.trim().parse::<ColumnRole>()?,
                    description: None,
                },
            );
        }
        Ok(MetadataPatch {
            purposes: (!self.purposes.is_empty()).then_some(self.purposes),
            title: self.title,
            description: self.description,
            contact: self.contact,
            keywords: (!self.keywords.is_empty()).then_some(self.keywords),
            themes: if self.themes.is_empty() {
                None
            } else {
                Some(
                    self.themes
                        .iter()
                        .map(|t| t.parse::<Theme>())
                        .collect::<Result<_, _>>()?,
                )
            },
            classification: self
                .classification
                .map(|c| c.parse::<Classification>())
                .transpose()?,
            columns: (!columns.is_empty()).then_some(columns),
            legal_basis: self.legal_basis,
            retention: self.retention.map(|r| r.parse::<Retention>()).transpose()?,
            update_frequency: self
                .update_frequency
                .map(|f| f.parse::<UpdateFrequency>())
                .transpose()?,
        })
    }
}

#[derive(Subcommand)]
pub enum ProductCmd {
    /// Register a CSV or Parquet file or folder (or object-store URL) in place.
    Add {
        /// Path or URL of the data.
        location: String,
        /// Product name (SQL table name); default: from the file name.
        #[arg(long)]
        name: Option<String>,
        /// csv or parquet; default: from the file name.
        #[arg(long)]
        format: Option<String>,
        /// CSV delimiter, e.g. ';' or '\t'.
        #[arg(long)]
        delimiter: Option<String>,
        /// The CSV file has no header line.
        #[arg(long)]
        no_header: bool,
        #[command(flatten)]
        meta: MetaArgs,
        #[command(flatten)]
        dir: NodeDir,
        /// Print the registered product as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List this node's products.
    List(ListArgs),
    /// Show one product: metadata, schema and profile.
    Show(ShowArgs),
    /// Change a product's metadata.
    Update {
        name: String,
        #[command(flatten)]
        meta: MetaArgs,
        #[command(flatten)]
        dir: NodeDir,
    },
    /// Remove a product's registration (the data is not touched).
    Remove {
        name: String,
        #[command(flatten)]
        dir: NodeDir,
    },
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    page: PageArgs,
    #[command(flatten)]
    dir: NodeDir,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    name: String,
    #[command(flatten)]
    dir: NodeDir,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct PageArgs {
    /// Page number, from 1.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=i64::from(PageRequest::MAX_PAGE)))]
    page: u32,
    /// Items per page, 1 to 200.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=i64::from(PageRequest::MAX_PER_PAGE)))]
    per_page: u32,
}

impl PageArgs {
    fn request(&self) -> PageRequest {
        PageRequest::new(Some(self.page), Some(self.per_page))
    }
}

/// A progress bar for profiling: a bar when the row count is known, a spinner otherwise.
pub fn profile_bar(label: &str) -> (ProgressBar, impl Fn(ProfileProgress) + Send + Sync + use<>) {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix} {human_pos} rows {msg}")
            .expect("valid template"),
    );
    bar.set_prefix(label.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    let b = bar.clone();
    let f = move |p: ProfileProgress| {
        if let Some(total) = p.rows_total
            && b.length() != Some(total)
        {
            b.set_length(total);
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {human_pos}/{human_len} rows ({eta})",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
        }
        b.set_position(p.rows_done);
    };
    (bar, f)
}

pub async fn product(cmd: ProductCmd) -> Result<()> {
    match cmd {
        ProductCmd::Add {
            location,
            name,
            format,
            delimiter,
            no_header,
            meta,
            dir,
            json,
        } => {
            let node = open(&dir).await?;
            let req = RegisterRequest {
                location: location.clone(),
                name,
                format: format.map(|f| f.parse::<SourceFormat>()).transpose()?,
                delimiter,
                has_header: no_header.then_some(false),
                metadata: meta.into_patch()?,
            };
            let (bar, progress) = profile_bar("profiling");
            let res = node.register(req, &progress).await;
            bar.finish_and_clear();
            let p = res.with_context(|| format!("cannot register {location}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&p)?);
            } else {
                println!(
                    "Registered {} ({} rows, {} columns) from {}.",
                    p.name,
                    p.profile.row_count,
                    p.schema.len(),
                    p.source.location
                );
            }
            Ok(())
        }
        ProductCmd::List(ListArgs { page, dir, json }) => {
            let node = open(&dir).await?;
            let p = node.products(page.request()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&p)?);
            } else {
                output::products_table(&p);
            }
            Ok(())
        }
        ProductCmd::Show(ShowArgs { name, dir, json }) => {
            let node = open(&dir).await?;
            let p = node.product(&name).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&p)?);
            } else {
                output::product_details(&p);
            }
            Ok(())
        }
        ProductCmd::Update { name, meta, dir } => {
            let node = open(&dir).await?;
            let p = node.update_metadata(&name, meta.into_patch()?).await?;
            println!("Updated {} (version {}).", p.name, p.version);
            Ok(())
        }
        ProductCmd::Remove { name, dir } => {
            let node = open(&dir).await?;
            node.remove(&name).await?;
            println!("Removed {name}. Its data was not touched.");
            Ok(())
        }
    }
}

// ---------------- catalog ----------------

#[derive(Subcommand)]
pub enum CatalogCmd {
    /// Search titles, descriptions, keywords, themes and column names.
    Search {
        /// Words to look for (every word must match).
        query: Vec<String>,
        #[command(flatten)]
        list: ListArgs,
    },
    /// List the catalog (same as `product list`).
    List(ListArgs),
    /// Show one entry (same as `product show`).
    Show(ShowArgs),
}

pub async fn catalog(cmd: CatalogCmd) -> Result<()> {
    match cmd {
        CatalogCmd::Search {
            query,
            list: ListArgs { page, dir, json },
        } => {
            let node = open(&dir).await?;
            let hits = node.search(&query.join(" "), page.request()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&hits)?);
            } else {
                output::search_table(&hits);
            }
            Ok(())
        }
        CatalogCmd::List(args) => product(ProductCmd::List(args)).await,
        CatalogCmd::Show(args) => product(ProductCmd::Show(args)).await,
    }
}

// ---------------- sql ----------------

#[derive(Args)]
pub struct SqlArgs {
    /// The query, e.g. "SELECT municipality, count(*) FROM job_seekers GROUP BY 1".
    query: String,
    /// table, json, ndjson, csv, arrow (Arrow IPC stream) or parquet (redirect those two to a file).
    #[arg(long, default_value = "table")]
    format: String,
    /// Rows shown in table format.
    #[arg(long, default_value_t = 1000)]
    max_rows: usize,
    #[command(flatten)]
    dir: NodeDir,
}

pub async fn sql(args: SqlArgs) -> Result<()> {
    let node = open(&args.dir).await?;
    let result = node.query(&args.query).await?;
    if args.format == "table" {
        let (table, total) = result.to_text_table(args.max_rows).await?;
        println!("{table}");
        if total as usize > args.max_rows {
            println!(
                "({} rows; first {} shown — use --format csv for all)",
                total, args.max_rows
            );
        } else {
            println!("({total} rows)");
        }
        return Ok(());
    }
    let format: OutputFormat = args.format.parse().map_err(anyhow::Error::msg)?;
    let mut stream = result.encode(format);
    let mut out = std::io::stdout().lock();
    while let Some(chunk) = stream.next().await {
        out.write_all(&chunk?)?;
    }
    if matches!(format, OutputFormat::Json) {
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

// ---------------- tokens ----------------

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Issue a token; its secret is printed once.
    Create {
        #[arg(long)]
        label: String,
        /// analyst, steward or admin.
        #[arg(long, default_value = "analyst")]
        role: String,
        #[command(flatten)]
        dir: NodeDir,
    },
    /// List tokens (never their secrets).
    List {
        #[command(flatten)]
        dir: NodeDir,
    },
    /// Revoke a token at once.
    Revoke {
        id: String,
        #[command(flatten)]
        dir: NodeDir,
    },
}

pub async fn token(cmd: TokenCmd) -> Result<()> {
    match cmd {
        TokenCmd::Create { label, role, dir } => {
            let role: ApiRole = role.parse().map_err(anyhow::Error::msg)?;
            if label.trim().is_empty() {
                bail!("the label must not be empty");
            }
            let node = open(&dir).await?;
            let t = node.create_token(label.trim(), role).await?;
            println!("Token {} ({}), shown only now:", t.info.id, t.info.role);
            println!("  {}", t.secret);
            Ok(())
        }
        TokenCmd::List { dir } => {
            let node = open(&dir).await?;
            output::tokens_table(&node.tokens().await?);
            Ok(())
        }
        TokenCmd::Revoke { id, dir } => {
            let node = open(&dir).await?;
            let t = node.revoke_token(&id).await?;
            println!("Revoked token {} ({}).", t.id, t.label);
            Ok(())
        }
    }
}

// ---------------- users of the web interface ----------------

#[derive(Subcommand)]
pub enum UserCmd {
    /// Add a person who signs in to the node's web interface. The password comes from
    /// AGORA_PASSWORD; without it, one is generated and printed once.
    Add {
        /// User name: lower-case letters, digits, dots, underscores and hyphens.
        username: String,
        /// The person's name as shown on the pages.
        #[arg(long)]
        name: String,
        /// analyst, steward or admin.
        #[arg(long, default_value = "analyst")]
        role: String,
        #[command(flatten)]
        dir: NodeDir,
    },
    /// List users (never their passwords).
    List {
        #[command(flatten)]
        dir: NodeDir,
    },
    /// Set a new password (from AGORA_PASSWORD, or generated and printed once); the user's
    /// sessions end.
    Passwd {
        username: String,
        #[command(flatten)]
        dir: NodeDir,
    },
    /// Disable a user at once; their sessions end.
    Disable {
        username: String,
        #[command(flatten)]
        dir: NodeDir,
    },
}

/// The password from AGORA_PASSWORD, or a generated one (and whether it was generated).
fn password_from_env() -> (String, bool) {
    match std::env::var("AGORA_PASSWORD") {
        Ok(p) if !p.is_empty() => (p, false),
        _ => (agora_node::agora_trust::password::generate_password(), true),
    }
}

pub async fn user(cmd: UserCmd) -> Result<()> {
    match cmd {
        UserCmd::Add {
            username,
            name,
            role,
            dir,
        } => {
            let role: ApiRole = role.parse().map_err(anyhow::Error::msg)?;
            let node = open(&dir).await?;
            let (password, generated) = password_from_env();
            let u = node.create_user(&username, &name, role, &password).await?;
            println!("User {} ({}) added.", u.username, u.role);
            if generated {
                println!(
                    "Password (shown only now; give it to {} safely):",
                    u.display_name
                );
                println!("  {password}");
            }
            Ok(())
        }
        UserCmd::List { dir } => {
            let node = open(&dir).await?;
            output::users_table(&node.users().await?);
            Ok(())
        }
        UserCmd::Passwd { username, dir } => {
            let node = open(&dir).await?;
            let (password, generated) = password_from_env();
            node.set_password(&username, &password).await?;
            println!("Password of {username} changed; their sessions have ended.");
            if generated {
                println!("New password (shown only now):");
                println!("  {password}");
            }
            Ok(())
        }
        UserCmd::Disable { username, dir } => {
            let node = open(&dir).await?;
            node.disable_user(&username).await?;
            println!("User {username} disabled; their sessions have ended.");
            Ok(())
        }
    }
}

// ---------------- demo data ----------------

#[derive(Args)]
pub struct DemoDataArgs {
    /// Number of residents.
    #[arg(long, default_value_t = 100_000)]
    scale: u64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output directory (replaced).
    #[arg(long)]
    out: PathBuf,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

pub fn demo_data(args: DemoDataArgs) -> Result<()> {
    let summary = generate_with_bar(args.scale, args.seed, &args.out, args.threads)?;
    output::gen_summary(&summary);
    Ok(())
}

pub fn generate_with_bar(
    scale: u64,
    seed: u64,
    out: &std::path::Path,
    threads: usize,
) -> Result<agora_datagen::GenSummary> {
    let bar = ProgressBar::new(scale);
    bar.set_style(
        ProgressStyle::with_template(
            "generating [{bar:30}] {human_pos}/{human_len} residents ({per_sec}, {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let b = bar.clone();
    let mut opts = agora_datagen::GenOptions::new(scale, seed, out);
    opts.threads = threads;
    let summary = agora_datagen::generate(&opts, &move |done| b.set_position(done));
    bar.finish_and_clear();
    Ok(summary?)
}
