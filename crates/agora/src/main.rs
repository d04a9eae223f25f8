//! `agora`: node, command-line client and demo in one binary.

/// mimalloc: DataFusion's planning and Arrow's buffers allocate and free a great deal.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod access;
mod agreement;
mod audit;
mod authority;
mod catalog;
mod citizen;
mod cmd;
mod demo;
mod demo_data;
mod node;
mod output;
mod product;
mod scenarios;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "agora",
    version,
    about = "Share public-sector data securely, lawfully and with privacy built in.",
    long_about = None,
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the node keeps its state.
#[derive(Args, Clone, Debug)]
pub struct NodeDir {
    /// The node's data directory.
    #[arg(
        long,
        env = "AGORA_DATA_DIR",
        default_value = "agora-data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// Metadata store URL (postgres://...); by default SQLite in the data directory.
    #[arg(
        long = "store",
        env = "AGORA_STORE_URL",
        global = true,
        hide_env_values = true
    )]
    pub store_url: Option<String>,
    /// A URL prefix remote data may be registered from, e.g. s3://open-data/ (repeatable;
    /// none by default).
    #[arg(
        long = "allow-remote",
        env = "AGORA_ALLOW_REMOTE",
        value_delimiter = ',',
        global = true
    )]
    pub allow_remote: Vec<String>,
    /// Let remote data come from hosts on loopback, private or link-local addresses.
    #[arg(long, global = true)]
    pub allow_private_addresses: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Set up and run a node.
    #[command(subcommand)]
    Node(node::NodeCmd),
    /// Register, list, show, update and remove this node's data products.
    #[command(subcommand)]
    Product(Box<product::ProductCmd>),
    /// Browse and search the catalog.
    #[command(subcommand)]
    Catalog(catalog::CatalogCmd),
    /// Run SQL over this node's products.
    Sql(catalog::SqlArgs),
    /// Request access to other members' products; negotiate, approve and revoke agreements.
    #[command(subcommand)]
    Agreement(agreement::AgreementCmd),
    /// Issue, list and revoke API tokens.
    #[command(subcommand)]
    Token(access::TokenCmd),
    /// Add, list and disable the people who sign in to the web interface.
    #[command(subcommand)]
    User(access::UserCmd),
    /// Generate the demo ecosystem's data as Parquet.
    DemoData(demo_data::DemoDataArgs),
    /// Start the whole demo ecosystem on this machine.
    Demo(demo::DemoArgs),
    /// Create and run an ecosystem authority: root, members, certificates, trust list.
    #[command(subcommand)]
    Authority(authority::AuthorityCmd),
    /// Check a node's transparency log and list what it records.
    #[command(subcommand)]
    Audit(audit::AuditCmd),
    /// Issue one-time codes for residents signing in to the citizen portal.
    #[command(subcommand)]
    Citizen(citizen::CitizenCmd),
    /// Print a shell completion script: `agora completions bash > /etc/bash_completion.d/agora`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `agora man > agora.1 && man ./agora.1`; with --out,
    /// write it and one page per subcommand (agora-node.1, agora-sql.1, …) into a folder.
    Man {
        /// A folder for every page, e.g. /usr/local/share/man/man1.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Whether the command serves (a node, the demo, an authority) rather than answering and
/// ending.
fn serves(command: &Command) -> bool {
    match command {
        Command::Demo(_) => true,
        Command::Node(c) => c.serves(),
        Command::Authority(c) => c.serves(),
        _ => false,
    }
}

/// A client command whose output goes into a pipe that closes early (`| head`) ends
/// quietly, as Unix tools do, instead of failing on the next write. Servers keep the
/// default of ignoring the signal (a closed connection is an error on that connection).
fn quiet_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to its default before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The error and its causes, each said once: a cause whose text an earlier line already
/// holds (an error that wraps another and repeats its message) is not repeated.
fn error_report(e: &anyhow::Error) -> String {
    let mut lines: Vec<String> = vec![format!("error: {e}")];
    let mut said = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if text.is_empty() || said.contains(&text) {
            continue;
        }
        lines.push(format!("  caused by: {text}"));
        said.push('\n');
        said.push_str(&text);
    }
    lines.join("\n")
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if !serves(&cli.command) {
        quiet_on_closed_pipe();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(agora_node::WORKER_STACK)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Node(c) => node::node(c).await,
            Command::Product(c) => product::product(*c).await,
            Command::Catalog(c) => catalog::catalog(c).await,
            Command::Sql(a) => catalog::sql(a).await,
            Command::Token(c) => access::token(c).await,
            Command::User(c) => access::user(c).await,
            Command::Agreement(c) => agreement::agreement(c).await,
            Command::DemoData(a) => demo_data::demo_data(a),
            Command::Demo(a) => demo::run(a).await,
            Command::Authority(c) => authority::run(c).await,
            Command::Audit(c) => audit::run(c).await,
            Command::Citizen(c) => citizen::run(c).await,
            Command::Completions { shell } => {
                use clap::CommandFactory;
                clap_complete::generate(
                    shell,
                    &mut Cli::command(),
                    "agora",
                    &mut std::io::stdout(),
                );
                Ok(())
            }
            Command::Man { out } => {
                use anyhow::Context;
                use clap::CommandFactory;
                match out {
                    None => clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?,
                    Some(dir) => {
                        clap_mangen::generate_to(Cli::command(), &dir).with_context(|| {
                            format!("cannot write the manual pages into {}", dir.display())
                        })?;
                        println!("Wrote the manual pages into {}.", dir.display());
                    }
                }
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", error_report(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
