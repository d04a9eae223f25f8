//! `agora demo`: the whole demo ecosystem on this machine, one node per member.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Instant;

use std::sync::Arc;

use agora_authority::{Authority, AuthorityConfig};
use agora_model::{Endpoints, MemberId};
use agora_node::{ApiRole, Node, NodeConfig, RegisterRequest};
use agora_server::ServerConfig;
use anyhow::{Context, Result};
use clap::Args;
use futures::FutureExt;
use serde::{Deserialize, Serialize};

use crate::cmd;

/// A person of a demo member who signs in to its node's web interface.
#[derive(Serialize, Deserialize, Clone)]
struct DemoUser {
    username: String,
    name: String,
    role: ApiRole,
    password: String,
}

/// The demo's users of every node: a steward, an analyst, an administrator and an auditor.
const DEMO_USERS: &[(&str, ApiRole, &str)] = &[
    ("steward", ApiRole::Steward, "Data steward"),
    ("analyst", ApiRole::Analyst, "Analyst"),
    ("admin", ApiRole::Admin, "Administrator"),
    ("auditor", ApiRole::Auditor, "Auditor"),
];

/// The node's demo users, made on first use with generated passwords kept in
/// `demo-users.json` (mode 0600) beside its store; a user whose password was lost gets a
/// new one.
async fn demo_users(node: &Node) -> Result<Vec<DemoUser>> {
    let path = node.data_dir().join("demo-users.json");
    let saved: Vec<DemoUser> = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let existing = node.users().await?;
    let by = agora_node::Accessor::command_line();
    let mut out = Vec::new();
    for (username, role, title) in DEMO_USERS {
        let exists = existing
            .iter()
            .any(|u| u.username == *username && u.disabled_at.is_none());
        let user = match saved.iter().find(|u| u.username == *username) {
            Some(u) if exists => u.clone(),
            _ => {
                let password = agora_trust::password::generate_password();
                let name = format!("{title}, {}", node.name());
                if existing.iter().any(|u| u.username == *username) {
                    node.set_password(username, &password, &by).await?;
                } else {
                    node.create_user(username, &name, *role, &password, &by)
                        .await?;
                }
                DemoUser {
                    username: (*username).to_owned(),
                    name,
                    role: *role,
                    password,
                }
            }
        };
        out.push(user);
    }
    write_private_json(&path, &out)?;
    Ok(out)
}

/// The demo members (PRODUCT.md): id and organisation.
pub const MEMBERS: &[(&str, &str)] = &[
    ("population-registry", "Population Registry Office"),
    ("employment-agency", "National Employment Agency"),
    ("tax-office", "Tax and Benefits Administration"),
    ("city-hospital", "City General Hospital"),
    ("county-hospital", "County Hospital"),
    ("statistics-office", "National Statistics Office"),
    ("city-council", "Municipality of Northport"),
];

const DEMO_TOKEN_LABEL: &str = "agora demo administrator";

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where the demo keeps its data and nodes.
    #[arg(long, default_value = "agora-demo")]
    data_dir: PathBuf,
    /// Number of residents of the fictional country.
    #[arg(long, default_value_t = 100_000)]
    scale: u64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Port of the first node; the others follow. 0 picks free ports.
    #[arg(long, default_value_t = 7400)]
    base_port: u16,
    /// Set everything up, print the guide and exit instead of serving.
    #[arg(long)]
    no_serve: bool,
}

#[derive(Serialize)]
struct EcosystemMember {
    id: String,
    name: String,
    base_url: String,
    /// An administrator API token for this member's node.
    token: String,
    data_dir: String,
    /// The node's exchange listener: other members' nodes and this member's Flight SQL
    /// tools connect here over mutual TLS.
    exchange_url: String,
    /// A client certificate of this member for Flight SQL tools, its key and the root.
    client_certificate: String,
    client_key: String,
    /// People who sign in to the node's web interface at `base_url`.
    users: Vec<DemoUser>,
}

#[derive(Serialize)]
struct Ecosystem {
    scale: u64,
    seed: u64,
    /// The demo ecosystem's authority (HTTPS) and its root certificate.
    authority_url: String,
    root_certificate: String,
    /// The folder whose files the members' stewards may publish from the web pages and
    /// the API (each node's `--allow-path`).
    inbox: String,
    members: Vec<EcosystemMember>,
    /// The resident of the citizen-transparency scenario and their one-time code (valid
    /// for 10 minutes after the demo started, good once).
    #[serde(skip_serializing_if = "Option::is_none")]
    citizen: Option<crate::scenarios::DemoCitizen>,
}

/// The member that runs the citizen portal for the demo's country.
const CITIZEN_PORTAL: &str = "population-registry";

/// The demo ecosystem's id.
const ECOSYSTEM: &str = "agora-demo";

/// The demo data for the scale and seed asked for, generated unless it is there.
fn ensure_data(args: &DemoArgs, generated: &Path) -> Result<()> {
    if agora_datagen::is_complete(&agora_datagen::GenOptions::new(
        args.scale, args.seed, generated,
    )) {
        eprintln!("Using demo data in {}", generated.display());
        return Ok(());
    }
    eprintln!(
        "Generating demo data for {} residents (seed {})…",
        args.scale, args.seed
    );
    let s = crate::demo_data::generate_with_bar(args.scale, args.seed, generated, 0)?;
    eprintln!(
        "Generated {} rows in {:.1} s.",
        s.total_rows(),
        s.elapsed.as_secs_f64()
    );
    Ok(())
}

/// Member `id`'s node with its products registered (once), a fresh administrator token
/// and its demo users.
async fn member_node(
    data_dir: &Path,
    generated: &Path,
    id: &str,
    name: &str,
) -> Result<(Node, String, Vec<DemoUser>)> {
    let member = MemberId::parse(id)?;
    let mut cfg = NodeConfig::new(data_dir.join("nodes").join(id));
    // Every member answers the population registry's citizen portal.
    cfg.citizens.portals = vec![MemberId::parse(CITIZEN_PORTAL)?];
    if id == "employment-agency" {
        crate::scenarios::install_policies(&cfg.data_dir)?;
    }
    let (node, _) = Node::open_or_init(&cfg, &member, name).await?;
    for (m, table) in agora_datagen::all_tables().iter().filter(|(m, _)| *m == id) {
        if node.store().get_product(table).await?.is_some() {
            continue;
        }
        let (bar, progress) = crate::product::profile_bar(&format!("registering {m}/{table}"));
        let res = node
            .register(
                RegisterRequest {
                    location: generated.join(m).join(table).display().to_string(),
                    name: Some((*table).to_owned()),
                    ..Default::default()
                },
                &progress,
            )
            .await;
        bar.finish_and_clear();
        res.with_context(|| format!("cannot register {m}/{table}"))?;
    }
    // A fresh administrator token per run: the previous one is revoked, since only
    // hashes are stored and the old secret cannot be shown again.
    for t in node.tokens().await? {
        if t.label == DEMO_TOKEN_LABEL && t.revoked_at.is_none() {
            node.revoke_token(&t.id, &agora_node::Accessor::command_line())
                .await?;
        }
    }
    let token = node
        .create_token(
            DEMO_TOKEN_LABEL,
            ApiRole::Admin,
            &agora_node::Accessor::command_line(),
        )
        .await?;
    let users = demo_users(&node)
        .await
        .with_context(|| format!("cannot create the demo users of {id}"))?;
    Ok((node, token.secret, users))
}

pub async fn run(args: DemoArgs) -> Result<()> {
    cmd::init_tracing(cmd::LogFormat::Text, "warn");
    let started = Instant::now();
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let data_dir = std::fs::canonicalize(&args.data_dir)?;
    let generated = data_dir.join("data");
    let inbox = data_dir.join("inbox");
    std::fs::create_dir_all(&inbox)
        .with_context(|| format!("cannot create {}", inbox.display()))?;

    // 1. Data, generated once per scale and seed.
    ensure_data(&args, &generated)?;

    // 2. One node per member, with its products registered once.
    let mut nodes = Vec::new();
    let mut users = Vec::new();
    for (id, name) in MEMBERS {
        let (node, token, people) = member_node(&data_dir, &generated, id, name).await?;
        users.push(people);
        nodes.push((node, token));
    }

    // 3. Listen on loopback: per member an API port and an exchange port, and one port
    //    for the authority.
    let (listeners, exchange_listeners, authority_listener) =
        bind_listeners(args.base_port, &nodes).await?;

    // 4. The ecosystem: an authority, every member enrolled with its exchange endpoint,
    //    and a client certificate per member for Flight SQL tools.
    let authority_url = format!("https://{}", authority_listener.local_addr()?);
    let authority = Arc::new(open_authority(&data_dir.join("authority"), &authority_url).await?);
    // Served from now on: nodes enrol with it over HTTPS, as they would with a real one.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut servers: tokio::task::JoinSet<Result<()>> = tokio::task::JoinSet::new();
    servers.spawn(
        agora_server::serve_authority(
            Arc::clone(&authority),
            authority_listener,
            vec![Ipv4Addr::LOCALHOST.to_string()],
            stopped(stop_rx.clone()),
        )
        .map(|r| r.context("the authority failed")),
    );
    let keep = enrol_members(&nodes, &exchange_listeners, &authority, &authority_url).await?;
    // Revoked members take no part: their nodes, listeners and users are dropped.
    let nodes = kept(nodes, &keep);
    let listeners = kept(listeners, &keep);
    let exchange_listeners = kept(exchange_listeners, &keep);
    let users = kept(users, &keep);
    let list = authority.trust_list().await?;
    let mut client_files = Vec::new();
    for (node, _) in &nodes {
        let trust = node.enrolled()?;
        trust.accept_list(list.clone())?;
        client_files.push(client_certificate(node).await?);
    }
    let list = authority.trust_list().await?;
    for (node, _) in &nodes {
        node.enrolled()?.accept_list(list.clone())?;
    }

    let members = describe_members(
        &nodes,
        &listeners,
        &exchange_listeners,
        &client_files,
        users,
    )?;
    let mut eco = Ecosystem {
        scale: args.scale,
        seed: args.seed,
        authority_url: authority_url.clone(),
        root_certificate: data_dir
            .join("authority")
            .join("root.crt")
            .display()
            .to_string(),
        inbox: inbox.display().to_string(),
        members,
        citizen: None,
    };
    let eco_path = data_dir.join("ecosystem.json");

    // 5. Serve until Ctrl-C: the authority, every node's API and exchange listener, and
    //    each node's membership upkeep (trust list, renewal, federated catalog).
    if !args.no_serve {
        let served = Served {
            listeners,
            exchange_listeners,
            inbox: inbox.clone(),
        };
        eco.citizen = serve_members(nodes, served, &mut servers, &stop_rx).await?;
    }
    write_private_json(&eco_path, &eco)?;
    print_guide(
        &eco,
        &eco_path,
        started.elapsed().as_secs_f64(),
        args.no_serve,
    );
    if !args.no_serve {
        cmd::shutdown_signal().await;
        eprintln!("Stopping the demo…");
    }
    let _ = stop_tx.send(true);
    while let Some(done) = servers.join_next().await {
        done.context("a demo task failed")??;
    }
    if !args.no_serve {
        eprintln!(
            "Demo stopped. Run `{} demo` again to restart it in seconds.",
            agora_command()
        );
    }
    Ok(())
}

/// Enrols every member's node with the demo authority at its exchange endpoint; says
/// which took part (a revoked member is reported and left out of this run).
async fn enrol_members(
    nodes: &[(Node, String)],
    exchange_listeners: &[tokio::net::TcpListener],
    authority: &Authority,
    authority_url: &str,
) -> Result<Vec<bool>> {
    let mut keep = Vec::new();
    for ((node, _), xl) in nodes.iter().zip(exchange_listeners) {
        let endpoints = Endpoints {
            exchange: Some(format!("https://{}", xl.local_addr()?)),
        };
        let problem = enrol(node, authority, authority_url, endpoints).await?;
        if let Some(why) = &problem {
            eprintln!(
                "Leaving {} out of this run: {why}. Its data directory {} is kept as it is.",
                node.member(),
                node.data_dir().display()
            );
        }
        keep.push(problem.is_none());
    }
    Ok(keep)
}

/// The demo's listeners on loopback: each member's API and exchange listener, and the
/// authority's. Ports follow `base_port` (0: any free port).
async fn bind_listeners(
    base_port: u16,
    nodes: &[(Node, String)],
) -> Result<(
    Vec<tokio::net::TcpListener>,
    Vec<tokio::net::TcpListener>,
    tokio::net::TcpListener,
)> {
    let port = |offset: usize| -> Result<u16> {
        if base_port == 0 {
            return Ok(0);
        }
        u16::try_from(offset)
            .ok()
            .and_then(|o| base_port.checked_add(o))
            .context("--base-port is too high for the demo's ports")
    };
    let bind = |port: u16, what: String| async move {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!(
                "cannot listen on {addr} for {what}: is another demo running? Stop it or pass --base-port"
            )
        })
    };
    let mut listeners = Vec::new();
    let mut exchange_listeners = Vec::new();
    for (i, (node, _)) in nodes.iter().enumerate() {
        listeners.push(bind(port(i)?, node.member().to_string()).await?);
        exchange_listeners.push(
            bind(
                port(10 + i)?,
                format!("the exchange listener of {}", node.member()),
            )
            .await?,
        );
    }
    let authority_listener = bind(port(MEMBERS.len())?, "the authority".into()).await?;
    Ok((listeners, exchange_listeners, authority_listener))
}

/// What the guide and `ecosystem.json` say of each running member.
fn describe_members(
    nodes: &[(Node, String)],
    listeners: &[tokio::net::TcpListener],
    exchange_listeners: &[tokio::net::TcpListener],
    client_files: &[agora_node::trust::ClientFiles],
    users: Vec<Vec<DemoUser>>,
) -> Result<Vec<EcosystemMember>> {
    let mut members = Vec::new();
    for (((((node, token), l), xl), files), users) in nodes
        .iter()
        .zip(listeners)
        .zip(exchange_listeners)
        .zip(client_files)
        .zip(users)
    {
        members.push(EcosystemMember {
            id: node.member().to_string(),
            name: node.name().to_owned(),
            base_url: format!("http://{}", l.local_addr()?),
            token: token.clone(),
            data_dir: node.data_dir().display().to_string(),
            exchange_url: format!("https://{}", xl.local_addr()?),
            client_certificate: files.certificate.display().to_string(),
            client_key: files.key.display().to_string(),
            users,
        });
    }
    Ok(members)
}

/// Completes once the demo is told to stop.
async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Serves every member: the exchange listeners first; then, once every member knows the
/// others' offers and the scenarios have run under real agreements, each node's API and
/// its membership and negotiation upkeep.
/// Where the members are served: an API and an exchange listener each, and the folder
/// their stewards may publish from.
struct Served {
    listeners: Vec<tokio::net::TcpListener>,
    exchange_listeners: Vec<tokio::net::TcpListener>,
    inbox: PathBuf,
}

async fn serve_members(
    nodes: Vec<(Node, String)>,
    served: Served,
    servers: &mut tokio::task::JoinSet<Result<()>>,
    stop_rx: &tokio::sync::watch::Receiver<bool>,
) -> Result<Option<crate::scenarios::DemoCitizen>> {
    let Served {
        listeners,
        exchange_listeners,
        inbox,
    } = served;
    for (node, xl) in nodes.iter().map(|(n, _)| n).zip(exchange_listeners) {
        servers.spawn(
            agora_server::serve_exchange(node.clone(), xl, stopped(stop_rx.clone()))
                .map(|r| r.context("an exchange listener failed")),
        );
    }
    // Every member's offers, before the guide says the ecosystem is ready.
    for (node, _) in &nodes {
        node.refresh_offers()
            .await
            .with_context(|| format!("{} cannot fetch the other members' offers", node.member()))?;
    }
    // The scenarios, under real agreements negotiated between the running nodes.
    let running: Vec<Node> = nodes.iter().map(|(n, _)| n.clone()).collect();
    let citizen = crate::scenarios::play(&running)
        .await
        .context("a demo scenario failed")?;
    for ((node, _), l) in nodes.into_iter().zip(listeners) {
        let n = node.clone();
        let rx = stop_rx.clone();
        servers.spawn(async move {
            n.run_membership(stopped(rx)).await;
            Ok(())
        });
        let (n, rx) = (node.clone(), stop_rx.clone());
        servers.spawn(async move {
            n.run_negotiations(std::time::Duration::from_secs(2), stopped(rx))
                .await;
            Ok(())
        });
        let (n, rx) = (node.clone(), stop_rx.clone());
        servers.spawn(async move {
            n.run_checkpoints(stopped(rx)).await;
            Ok(())
        });
        let config = ServerConfig {
            allowed_roots: vec![inbox.clone()],
            ..ServerConfig::default()
        };
        servers.spawn(
            agora_server::serve(node, l, config, stopped(stop_rx.clone()))
                .map(|r| r.context("a node's API failed")),
        );
    }
    Ok(citizen)
}

/// Opens the demo authority, creating it on first use, published at `url` (the port may
/// differ between runs).
async fn open_authority(dir: &Path, url: &str) -> Result<Authority> {
    let cfg = AuthorityConfig::new(dir);
    if dir.join("root.crt").exists() {
        let a = Authority::open(cfg).await?;
        a.set_url(url).await?;
        Ok(a)
    } else {
        Ok(Authority::init(cfg, ECOSYSTEM, url).await?)
    }
}

/// Enrols a member's node with the demo authority, or, when it is enrolled already, brings
/// it the current trust list and renews its certificate if its endpoint moved.
/// The items of `v` whose mark in `keep` is true.
fn kept<T>(v: Vec<T>, keep: &[bool]) -> Vec<T> {
    v.into_iter()
        .zip(keep)
        .filter_map(|(x, k)| k.then_some(x))
        .collect()
}

/// Enrols `node` with the demo authority, or brings its enrolment up to date; `Some` with
/// the reason when the authority has revoked it (the demo then leaves it out).
async fn enrol(
    node: &Node,
    authority: &Authority,
    url: &str,
    endpoints: Endpoints,
) -> Result<Option<String>> {
    match node.trust() {
        None => {
            let token = authority.admit(node.member(), node.name()).await?;
            node.enrol(url, &token, endpoints).await?;
        }
        Some(trust) => {
            trust.accept_list(authority.trust_list().await?)?;
            if let Some(why) = trust.own_standing_problem() {
                return Ok(Some(why));
            }
            let listed = trust
                .list()
                .member(node.member())
                .map(|m| m.endpoints.clone());
            if listed.as_ref() != Some(&endpoints) {
                trust.renew(Some(endpoints)).await?;
            }
        }
    }
    Ok(None)
}

/// The member's demo client certificate: the one on disk while it stands on the trust
/// list, a new one otherwise.
async fn client_certificate(node: &Node) -> Result<agora_node::trust::ClientFiles> {
    let trust = node.enrolled()?;
    let dir = node.data_dir().join("client");
    let cert_path = dir.join("client.crt");
    if let Ok(pem) = std::fs::read_to_string(&cert_path)
        && let Ok(certs) = agora_trust::pki::certs_from_pem(&pem)
        && let Some(der) = certs.first()
        && let Ok(info) = agora_trust::inspect(der)
        && matches!(
            trust.list().standing(node.member(), &info.fingerprint),
            agora_model::Standing::Trusted { .. }
        )
        && info.not_after > chrono::Utc::now() + chrono::Duration::days(1)
    {
        return Ok(agora_node::trust::ClientFiles {
            key: dir.join("client.key"),
            certificate: cert_path,
            root: dir.join("root.crt"),
            fingerprint: info.fingerprint,
        });
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(trust.client_certificate(&dir).await?)
}

/// Writes JSON readable only by the owner (it holds tokens), atomically.
fn write_private_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(serde_json::to_string_pretty(value)?.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// How to run this very binary from a shell: `agora` when that name on `PATH` is this
/// program (installed with `cargo install --path crates/agora`), else its full path — so
/// that every command the guide prints works as given, after `cargo run` too.
pub fn agora_command() -> String {
    let Ok(me) = std::env::current_exe().and_then(|p| p.canonicalize()) else {
        return "agora".into();
    };
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            dir.join("agora")
                .canonicalize()
                .is_ok_and(|found| found == me)
        })
    });
    if on_path {
        "agora".into()
    } else {
        shell_word(&me.display().to_string())
    }
}

/// A word as a POSIX shell reads it back unchanged: quoted when it holds anything but
/// letters, digits and `/._-+:@,=`.
pub fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@,=".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn print_guide(eco: &Ecosystem, eco_path: &Path, secs: f64, no_serve: bool) {
    let agora = agora_command();
    println!();
    println!(
        "Agora demo ecosystem — {} residents, ready in {secs:.1} s",
        eco.scale
    );
    println!();
    for m in &eco.members {
        println!("  {:<20} {:<32} {}", m.id, m.name, m.base_url);
    }
    println!();
    println!(
        "Members, URLs, administrator tokens and web sign-ins are in {} (readable only by you).",
        eco_path.display()
    );
    println!();
    println!("Web interface: open a member's URL in a browser and sign in as");
    for m in eco
        .members
        .iter()
        .filter(|m| m.id == "employment-agency" || m.id == "tax-office")
    {
        for u in &m.users {
            println!(
                "  {:<20} {:<8} {:<9} password {}",
                m.id,
                u.username,
                u.role.as_str(),
                u.password
            );
        }
    }
    println!("  (every member has steward, analyst and admin users; see the file above).");
    println!(
        "Stewards publish new data from the web pages (Publish data) or the API, from files in {}.",
        eco.inbox
    );
    if let Some(m) = eco.members.iter().find(|m| m.id == "employment-agency") {
        println!();
        println!("Try it (with jq installed):");
        println!(
            "  TOKEN=$(jq -r '.members[] | select(.id==\"employment-agency\") | .token' {})",
            eco_path.display()
        );
        println!(
            "  curl -s -H \"Authorization: Bearer $TOKEN\" {}/api/v1/catalog/search?q=skills",
            m.base_url
        );
        println!(
            "  curl -s -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' \\\n    -d '{{\"sql\": \"SELECT municipality, count(*) AS n FROM job_seekers GROUP BY 1 ORDER BY n DESC\", \"format\": \"csv\"}}' {}/api/v1/query",
            m.base_url
        );
        println!(
            "  {agora} sql --data-dir {} \"SELECT occupation_sought, count(*) FROM job_seekers GROUP BY 1\"",
            shell_word(&m.data_dir)
        );
        println!(
            "  {agora} catalog search income --data-dir {}",
            shell_word(&m.data_dir)
        );
        println!(
            "  {agora} agreement list --data-dir {}",
            shell_word(&m.data_dir)
        );
        println!(
            "  curl -s -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' \\\n    -d '{{\"sql\": \"SELECT municipality, count(*) AS n FROM \\\"city-hospital\\\".vacancies GROUP BY 1\", \"format\": \"csv\"}}' {}/api/v1/query",
            m.base_url
        );
        println!("  API description: {}/api/v1/openapi.json", m.base_url);
        println!();
        println!(
            "The members trust each other through the demo authority at {} (mutual TLS,",
            eco.authority_url
        );
        println!("signed and logged exchanges). Flight SQL tools (ADBC, JDBC) connect to");
        println!(
            "{} with the client certificate {}",
            m.exchange_url.replace("https://", "grpc+tls://"),
            m.client_certificate
        );
        println!("(key {}, root {}).", m.client_key, eco.root_certificate);
    }
    if let Some(c) = &eco.citizen
        && let Some(portal) = eco.members.iter().find(|m| m.id == c.portal)
    {
        println!();
        println!(
            "Citizen portal: sign in at {}/citizen/sign-in as resident {} with the one-time code {}",
            portal.base_url, c.person_id, c.code
        );
        println!(
            "(valid 10 minutes, good once; another: {agora} citizen code {} --data-dir {}).",
            c.person_id,
            shell_word(&portal.data_dir)
        );
    }
    if !no_serve {
        println!();
        println!("Press Ctrl-C to stop.");
    }
}
