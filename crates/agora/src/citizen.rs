//! `agora citizen`: what a node's operator does for residents using its citizen portal.

use anyhow::Result;
use clap::Subcommand;

use crate::NodeDir;
use crate::cmd::open;

#[derive(Subcommand)]
pub enum CitizenCmd {
    /// Issue a one-time code with which a resident signs in to the citizen portal
    /// (`/citizen` on the node's web interface): 8 digits, valid for 10 minutes, good once.
    /// Give it to the resident in person or by a channel that proves who they are.
    Code {
        /// The resident's national identification number (11 digits).
        person_id: String,
        #[command(flatten)]
        dir: NodeDir,
    },
}

pub async fn run(cmd: CitizenCmd) -> Result<()> {
    match cmd {
        CitizenCmd::Code { person_id, dir } => {
            let node = open(&dir).await?;
            let issued = node
                .issue_citizen_code(person_id.trim(), &agora_node::Accessor::command_line())
                .await?;
            println!(
                "One-time code for the resident, valid until {} (shown only now):",
                issued.expires_at.format("%H:%M:%S UTC")
            );
            println!("  {}", issued.code);
            Ok(())
        }
    }
}
