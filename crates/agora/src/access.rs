//! `agora token` and `agora user`: API tokens and the people who sign in to the web
//! interface.

use agora_node::ApiRole;
use anyhow::{Result, bail};
use clap::Subcommand;

use crate::NodeDir;
use crate::cmd::open;
use crate::output;

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Issue a token; its secret is printed once.
    Create {
        #[arg(long)]
        label: String,
        /// analyst, steward, admin or auditor (reads the logs, no data).
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
            let t = node
                .create_token(label.trim(), role, &agora_node::Accessor::command_line())
                .await?;
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
            let t = node
                .revoke_token(&id, &agora_node::Accessor::command_line())
                .await?;
            println!("Revoked token {} ({}).", t.id, t.label);
            Ok(())
        }
    }
}

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
        /// analyst, steward, admin or auditor (reads the logs, no data).
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
        _ => (agora_trust::password::generate_password(), true),
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
            let u = node
                .create_user(
                    &username,
                    &name,
                    role,
                    &password,
                    &agora_node::Accessor::command_line(),
                )
                .await?;
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
            node.set_password(&username, &password, &agora_node::Accessor::command_line())
                .await?;
            println!("Password of {username} changed; their sessions have ended.");
            if generated {
                println!("New password (shown only now):");
                println!("  {password}");
            }
            Ok(())
        }
        UserCmd::Disable { username, dir } => {
            let node = open(&dir).await?;
            node.disable_user(&username, &agora_node::Accessor::command_line())
                .await?;
            println!("User {username} disabled; their sessions have ended.");
            Ok(())
        }
    }
}
