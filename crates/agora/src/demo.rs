//! `agora demo`: the whole demo ecosystem on this machine, one node per member.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Instant;

use agora_model::MemberId;
use agora_node::{ApiRole, Node, NodeConfig, RegisterRequest};
use agora_server::ServerConfig;
use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

use crate::cmd;

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
}

#[derive(Serialize)]
struct Ecosystem {
    scale: u64,
    seed: u64,
    members: Vec<EcosystemMember>,
}

pub async fn run(args: DemoArgs) -> Result<()> {
    cmd::init_tracing(cmd::LogFormat::Text, "warn");
    let started = Instant::now();
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let data_dir = std::fs::canonicalize(&args.data_dir)?;
    let generated = data_dir.join("data");

    // 1. Data, generated once per scale and seed.
    if agora_datagen::is_complete(&agora_datagen::GenOptions::new(
        args.scale, args.seed, &generated,
    )) {
        eprintln!("Using demo data in {}", generated.display());
    } else {
        eprintln!(
            "Generating demo data for {} residents (seed {})…",
            args.scale, args.seed
        );
        let s = cmd::generate_with_bar(args.scale, args.seed, &generated, 0)?;
        eprintln!(
            "Generated {} rows in {:.1} s.",
            s.total_rows(),
            s.elapsed.as_secs_f64()
        );
    }

    // 2. One node per member, with its products registered once.
    let tables = agora_datagen::all_tables();
    let mut nodes = Vec::new();
    for (id, name) in MEMBERS {
        let member = MemberId::parse(id)?;
        let cfg = NodeConfig::new(data_dir.join("nodes").join(id));
        let (node, _) = Node::open_or_init(&cfg, &member, name).await?;
        for (m, table) in tables.iter().filter(|(m, _)| m == id) {
            if node.store().get_product(table).await?.is_some() {
                continue;
            }
            let (bar, progress) = cmd::profile_bar(&format!("registering {m}/{table}"));
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
                node.revoke_token(&t.id).await?;
            }
        }
        let token = node.create_token(DEMO_TOKEN_LABEL, ApiRole::Admin).await?;
        nodes.push((node, token.secret));
    }

    // 3. Listen on loopback, one port per member.
    let mut listeners = Vec::new();
    for (i, (node, _)) in nodes.iter().enumerate() {
        let port = if args.base_port == 0 {
            0
        } else {
            args.base_port
                .checked_add(i as u16)
                .context("--base-port is too high for seven nodes")?
        };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let l = tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!(
                "cannot listen on {addr} for {}: is another demo running? Stop it or pass --base-port",
                node.member()
            )
        })?;
        listeners.push(l);
    }

    let mut members = Vec::new();
    for ((node, token), l) in nodes.iter().zip(&listeners) {
        members.push(EcosystemMember {
            id: node.member().to_string(),
            name: node.name().to_owned(),
            base_url: format!("http://{}", l.local_addr()?),
            token: token.clone(),
            data_dir: node.data_dir().display().to_string(),
        });
    }
    let eco = Ecosystem {
        scale: args.scale,
        seed: args.seed,
        members,
    };
    let eco_path = data_dir.join("ecosystem.json");

    // 4. Serve until Ctrl-C.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut servers = Vec::new();
    if !args.no_serve {
        for ((node, _), l) in nodes.into_iter().zip(listeners) {
            let mut rx = stop_rx.clone();
            servers.push(tokio::spawn(agora_server::serve(
                node,
                l,
                ServerConfig::default(),
                async move {
                    let _ = rx.wait_for(|s| *s).await;
                },
            )));
        }
    }
    write_private_json(&eco_path, &eco)?;
    print_guide(
        &eco,
        &eco_path,
        started.elapsed().as_secs_f64(),
        args.no_serve,
    );
    if args.no_serve {
        return Ok(());
    }

    cmd::shutdown_signal().await;
    eprintln!("Stopping the demo…");
    let _ = stop_tx.send(true);
    for s in servers {
        s.await.context("a node task failed")??;
    }
    eprintln!("Demo stopped. Run `agora demo` again to restart it in seconds.");
    Ok(())
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

fn print_guide(eco: &Ecosystem, eco_path: &Path, secs: f64, no_serve: bool) {
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
        "Members, URLs and administrator tokens are in {} (readable only by you).",
        eco_path.display()
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
            "  agora sql --data-dir {} \"SELECT occupation_sought, count(*) FROM job_seekers GROUP BY 1\"",
            m.data_dir
        );
        println!("  API description: {}/api/v1/openapi.json", m.base_url);
    }
    if !no_serve {
        println!();
        println!("Press Ctrl-C to stop.");
    }
}
