//! What every command group shares: the node a data directory holds, logging, and the
//! signal that stops a server.

use agora_node::{Node, NodeConfig};
use anyhow::Result;
use clap::ValueEnum;

use crate::NodeDir;

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
/// Text logs are coloured only when stderr is a terminal (a log file gets plain text) and
/// `NO_COLOR` is not set.
pub fn init_tracing(format: LogFormat, default: &str) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("AGORA_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
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
