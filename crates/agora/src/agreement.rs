//! `agora agreement …`: access requests, their negotiation and agreements, from the
//! command line of either member's node.

use agora_model::{
    AccessMode, AccessRequest, AgreementTerms, ColumnTerm, DEFAULT_MIN_GROUP_SIZE,
    DisclosureControl, MemberId, Negotiation, NegotiationRole, NegotiationState, ProductName,
};
use agora_node::Node;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use crate::NodeDir;
use crate::cmd::open;

/// Terms as the command line gives them.
#[derive(Args, Clone, Debug)]
pub struct TermsArgs {
    /// Columns to share, comma-separated, each `name` or `name=MASK` with MASK one of
    /// redact, month, year, band:WIDTH, prefix:LENGTH, pseudonym.
    #[arg(long)]
    columns: Option<String>,
    /// records, aggregate or linkage.
    #[arg(long, default_value = "records")]
    mode: String,
    /// Only rows where this SQL condition over the product's columns holds.
    #[arg(long)]
    row_filter: Option<String>,
    /// Aggregate mode: smallest group shown, in distinct subjects.
    #[arg(long, default_value_t = DEFAULT_MIN_GROUP_SIZE)]
    min_group_size: u32,
    /// Most rows one query may return.
    #[arg(long)]
    max_rows: Option<u64>,
    /// The longest one query under the agreement may run on the owner's node, in seconds
    /// (less than the node's own limit; by default that limit).
    #[arg(long)]
    max_query_seconds: Option<u32>,
    /// The most memory one query under the agreement may hold on the owner's node, in MiB.
    #[arg(long)]
    max_query_memory_mib: Option<u32>,
    /// Aggregate mode: the columns that may only be summed, averaged or counted,
    /// comma-separated (every other column but the subject is a dimension).
    #[arg(long)]
    measures: Option<String>,
    /// Aggregate mode: how cells are protected: `standard`, or settings
    /// `count=MAX:VARIANCE`, `magnitude=MIN:MAX`, `p=P` or `nk=N:K` replacing the
    /// standard ones.
    #[arg(long)]
    disclosure: Option<String>,
    /// The terms as a JSON file instead (the API's `AgreementTerms`).
    #[arg(long, conflicts_with_all = ["columns", "row_filter", "max_rows", "max_query_seconds", "max_query_memory_mib", "measures", "disclosure"])]
    terms: Option<std::path::PathBuf>,
}

impl TermsArgs {
    fn build(&self) -> Result<AgreementTerms> {
        if let Some(path) = &self.terms {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the terms file {}", path.display()))?;
            return serde_json::from_str(&text)
                .with_context(|| format!("{} does not hold valid terms", path.display()));
        }
        let columns = self
            .columns
            .as_deref()
            .context("say which columns to share with --columns (or give --terms FILE)")?;
        let mode = self.mode.parse::<AccessMode>()?;
        let aggregate = mode == AccessMode::Aggregate;
        if !aggregate && (self.measures.is_some() || self.disclosure.is_some()) {
            anyhow::bail!("--measures and --disclosure apply to --mode aggregate only");
        }
        let measures = self
            .measures
            .iter()
            .flat_map(|m| m.split(','))
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(str::to_owned)
            .collect();
        // Aggregate agreements always state their disclosure control; the standard one
        // unless the user chose settings.
        let disclosure = match (&self.disclosure, aggregate) {
            (Some(spec), _) => Some(spec.parse::<DisclosureControl>()?),
            (None, true) => Some(DisclosureControl::standard()),
            (None, false) => None,
        };
        Ok(AgreementTerms {
            columns: ColumnTerm::parse_list(columns)?,
            row_filter: self.row_filter.clone(),
            mode,
            min_group_size: self.min_group_size,
            max_rows: self.max_rows,
            measures,
            disclosure,
            query_limits: agora_model::QueryBounds {
                max_seconds: self.max_query_seconds,
                max_memory_mib: self.max_query_memory_mib,
            },
        })
    }
}

#[derive(Subcommand)]
pub enum AgreementCmd {
    /// Ask another member for one of its products, for a purpose.
    Request {
        /// The owner's member id.
        #[arg(long)]
        owner: String,
        #[arg(long)]
        product: String,
        /// From the purposes vocabulary (job_matching, fraud_prevention, …).
        #[arg(long)]
        purpose: String,
        /// consent, contract, legal_obligation, vital_interests, public_task or
        /// legitimate_interests.
        #[arg(long, default_value = "public_task")]
        legal_basis: String,
        /// Why the data is needed, in plain words.
        #[arg(long)]
        justification: String,
        /// How long the agreement should last, in days from now.
        #[arg(long, default_value_t = 365)]
        days: i64,
        #[command(flatten)]
        terms: TermsArgs,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: NodeDir,
    },
    /// List negotiations and agreements, newest first.
    List {
        /// consumer or provider.
        #[arg(long)]
        role: Option<String>,
        /// REQUESTED, OFFERED, …, FINALIZED, TERMINATED.
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: NodeDir,
    },
    /// Show one negotiation with its history.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: NodeDir,
    },
    /// Approve a request (owner): the node signs the agreement.
    Approve {
        id: String,
        #[arg(long, default_value = "")]
        note: String,
        /// Replace the agreement in force with the same member for the same product and
        /// purpose (it is revoked once this one is in force). Without it, approval is
        /// refused while such an agreement is in force.
        #[arg(long)]
        supersede: bool,
        #[command(flatten)]
        dir: NodeDir,
    },
    /// Answer a request with other terms (owner).
    Offer {
        id: String,
        #[command(flatten)]
        terms: TermsArgs,
        #[arg(long, default_value = "")]
        note: String,
        #[command(flatten)]
        dir: NodeDir,
    },
    /// Answer the owner's counter-offer with other terms (consumer): the owner then
    /// approves, offers again or rejects.
    Counter {
        id: String,
        #[command(flatten)]
        terms: TermsArgs,
        #[arg(long, default_value = "")]
        note: String,
        #[command(flatten)]
        dir: NodeDir,
    },
    /// Accept the owner's counter-offer (consumer).
    Accept {
        id: String,
        #[command(flatten)]
        dir: NodeDir,
    },
    /// Reject or withdraw a negotiation (either side).
    Reject {
        id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        dir: NodeDir,
    },
    /// Revoke an agreement in force (either side); effective at once.
    Revoke {
        id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        dir: NodeDir,
    },
    /// Print the agreement as ODRL JSON-LD, with both signatures.
    Odrl {
        id: String,
        #[command(flatten)]
        dir: NodeDir,
    },
    /// Map pseudonyms of an agreement back to subject identifiers (owner only).
    Reidentify {
        id: String,
        pseudonyms: Vec<String>,
        #[command(flatten)]
        dir: NodeDir,
    },
    /// The node's policy decisions, newest first, with the policies that decided them.
    Decisions {
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[command(flatten)]
        dir: NodeDir,
    },
    /// Deliver owed negotiation messages now and end late negotiations (a running node
    /// does this on its own).
    Sync {
        #[command(flatten)]
        dir: NodeDir,
    },
}

fn summary(n: &Negotiation) -> String {
    // A finalized agreement that verification does not hold in force says so here too.
    let status = match agora_node::agreements::agreement_status(n, chrono::Utc::now()) {
        Some(s) if n.state == NegotiationState::Finalized && !s.in_force() => format!("  [{s}]"),
        _ => String::new(),
    };
    format!(
        "{}  {:<10}  {:<8}  {}.{}  for {}  with {}{}{status}",
        n.id,
        n.state.as_str(),
        n.role.as_str(),
        n.request.owner,
        n.request.product,
        n.request.purpose,
        n.peer(),
        n.reason
            .as_deref()
            .map(|r| format!("  ({r})"))
            .unwrap_or_default()
    )
}

pub async fn agreement(cmd: AgreementCmd) -> Result<()> {
    match cmd {
        AgreementCmd::Request {
            owner,
            product,
            purpose,
            legal_basis,
            justification,
            days,
            terms,
            json,
            dir,
        } => {
            let now = chrono::Utc::now();
            let request = AccessRequest {
                owner: MemberId::parse(&owner)?,
                product: ProductName::parse(&product)?,
                purpose,
                legal_basis,
                justification,
                terms: terms.build()?,
                valid_from: now,
                valid_until: now + chrono::Duration::days(days),
            };
            request_access(&dir, request, json).await
        }
        AgreementCmd::List {
            role,
            state,
            json,
            dir,
        } => list(&dir, role.as_deref(), state, json).await,
        AgreementCmd::Show { id, json, dir } => show(&dir, &id, json).await,
        AgreementCmd::Approve {
            id,
            note,
            supersede,
            dir,
        } => {
            let node = open(&dir).await?;
            let n = node.approve_superseding(&id, &note, supersede).await?;
            sent(&node, "Approved and signed", &n).await
        }
        AgreementCmd::Offer {
            id,
            terms,
            note,
            dir,
        } => {
            let node = open(&dir).await?;
            let n = node.counter_offer(&id, terms.build()?, &note).await?;
            sent(&node, "Offered", &n).await
        }
        AgreementCmd::Counter {
            id,
            terms,
            note,
            dir,
        } => {
            let node = open(&dir).await?;
            let n = node.counter_request(&id, terms.build()?, &note).await?;
            sent(&node, "Asked for other terms", &n).await
        }
        AgreementCmd::Accept { id, dir } => {
            let node = open(&dir).await?;
            let n = node.accept_offer(&id).await?;
            sent(&node, "Accepted", &n).await
        }
        AgreementCmd::Reject { id, reason, dir } | AgreementCmd::Revoke { id, reason, dir } => {
            let node = open(&dir).await?;
            let n = node.terminate(&id, &reason).await?;
            sent(&node, "Terminated", &n).await
        }
        AgreementCmd::Odrl { id, dir } => odrl(&dir, &id).await,
        AgreementCmd::Reidentify {
            id,
            pseudonyms,
            dir,
        } => {
            let node = open(&dir).await?;
            for (p, subject) in node.reidentify(&id, &pseudonyms).await? {
                println!("{p}  {}", subject.as_deref().unwrap_or("(not found)"));
            }
            Ok(())
        }
        AgreementCmd::Decisions { limit, dir } => {
            let node = open(&dir).await?;
            let decisions = node.policy_decisions(limit).await?;
            if decisions.is_empty() {
                println!("No policy decisions yet.");
            }
            for d in decisions {
                println!(
                    "{}  {}  {:<22}  {} → {}: {}",
                    d.seq,
                    d.at.format("%Y-%m-%d %H:%M:%S"),
                    d.outcome(),
                    d.principal,
                    d.resource,
                    d.reasons
                );
            }
            Ok(())
        }
        AgreementCmd::Sync { dir } => sync(&dir).await,
    }
}

/// Delivers the step just taken at once (what cannot be delivered is retried by the
/// running node) and says what was done.
async fn sent(node: &Node, what: &str, n: &Negotiation) -> Result<()> {
    node.deliver_outbox().await?;
    println!("{what}: {}", summary(n));
    Ok(())
}

async fn request_access(dir: &NodeDir, request: AccessRequest, json: bool) -> Result<()> {
    let node = open(dir).await?;
    let n = node.request_access(request).await?;
    node.deliver_outbox().await?;
    let n = node.negotiation(&n.id, Some(n.role)).await?.negotiation;
    if json {
        println!("{}", serde_json::to_string_pretty(&n)?);
    } else {
        println!("Requested: {}", summary(&n));
    }
    match n.state {
        NegotiationState::Terminated => anyhow::bail!(
            "{} refused the request: {}",
            n.request.owner,
            n.reason.as_deref().unwrap_or("no reason given")
        ),
        NegotiationState::Finalized if !json => println!(
            "The owner's rules approved it: the agreement is in force. Query it as \"{}\".{}.",
            n.request.owner, n.request.product
        ),
        NegotiationState::Requested if !json => println!(
            "Waiting for a steward of {} to decide; follow it with `agora agreement show {}`.",
            n.request.owner, n.id
        ),
        _ => {}
    }
    Ok(())
}

async fn list(dir: &NodeDir, role: Option<&str>, state: Option<String>, json: bool) -> Result<()> {
    let node = open(dir).await?;
    let role = match role {
        None => None,
        Some("consumer") => Some(NegotiationRole::Consumer),
        Some("provider") => Some(NegotiationRole::Provider),
        Some(other) => anyhow::bail!("unknown role {other:?}: use consumer or provider"),
    };
    let state = state.map(|s| s.parse::<NegotiationState>()).transpose()?;
    let list = node.negotiations(role, state, 1000).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else if list.is_empty() {
        println!("No negotiations.");
    } else {
        for n in &list {
            println!("{}", summary(n));
        }
    }
    Ok(())
}

async fn show(dir: &NodeDir, id: &str, json: bool) -> Result<()> {
    let node = open(dir).await?;
    let r = node.negotiation(id, None).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    let n = &r.negotiation;
    println!("{}", summary(n));
    println!(
        "requested terms: {}",
        serde_json::to_string(&n.request.terms)?
    );
    if let Some(o) = &n.offer {
        println!("offered terms:   {}", serde_json::to_string(o)?);
    }
    if let Some(a) = &n.agreement {
        println!(
            "agreement: valid {} to {}; signatures: owner {}, consumer {}",
            a.valid_from.format("%Y-%m-%d %H:%M UTC"),
            a.valid_until.format("%Y-%m-%d %H:%M UTC"),
            signature_word(n.signatures.owner.is_some()),
            signature_word(n.signatures.consumer.is_some()),
        );
    }
    if let Some(status) = agora_node::agreements::agreement_status(n, chrono::Utc::now()) {
        println!("status: {status}");
    }
    println!("deadline: {}", n.deadline);
    for e in &r.events {
        println!(
            "  {}  {:<10}  {}  {}",
            e.at,
            e.state.as_str(),
            e.actor,
            e.note
        );
    }
    if r.undelivered > 0 {
        println!(
            "({} not yet delivered to {})",
            crate::output::plural(r.undelivered as u64, "step"),
            n.peer()
        );
    }
    Ok(())
}

fn signature_word(present: bool) -> &'static str {
    if present { "present" } else { "missing" }
}

async fn odrl(dir: &NodeDir, id: &str) -> Result<()> {
    let node = open(dir).await?;
    let n = node.negotiation(id, None).await?.negotiation;
    let a = n
        .agreement
        .as_ref()
        .with_context(|| format!("negotiation {id} is {} and has no agreement", n.state))?;
    println!(
        "{}",
        serde_json::to_string_pretty(&a.to_odrl(&n.signatures))?
    );
    Ok(())
}

async fn sync(dir: &NodeDir) -> Result<()> {
    let node = open(dir).await?;
    let ended = node.expire_negotiations().await?;
    let sent = node.deliver_outbox().await?;
    let left = node.store().pending_messages().await?.len();
    use crate::output::plural;
    println!(
        "Ended {}; delivered {}; {left} still owed.",
        plural(ended as u64, "late negotiation"),
        plural(sent as u64, "message")
    );
    Ok(())
}
