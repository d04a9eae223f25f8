//! `agora audit`: check a node's transparency log, and list what it records.
//!
//! `agora audit verify` reads the whole log — from a running node's API (an auditor's
//! token) or from a data directory — hashes every entry again into a tree, and checks
//! that the tree's root is the one the node signed and the authority cosigned, and that
//! every tile the node serves is the tile computed. See docs/transparency.md.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use agora_model::{AuditEntry, EntryFilter};
use agora_node::Node;
use agora_trust::tlog::{self, LogVerifier, TileHashes, TileKey};
use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};

use crate::NodeDir;
use crate::cmd::open;

#[derive(Subcommand)]
pub enum AuditCmd {
    /// Check a node's whole transparency log against its signed, witnessed checkpoint.
    Verify(VerifyArgs),
    /// List the log's entries, newest first (filters combine).
    Entries(EntriesArgs),
}

#[derive(Args)]
pub struct VerifyArgs {
    /// A running node's API, e.g. http://127.0.0.1:8080 (with an auditor's --token and
    /// the ecosystem's --root); without it, the node in --data-dir.
    #[arg(long)]
    node: Option<String>,
    /// An API token with the auditor (or admin) role.
    #[arg(long, env = "AGORA_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The ecosystem's root certificate (PEM), whose key cosigns witnessed checkpoints.
    #[arg(long)]
    root: Option<PathBuf>,
    #[command(flatten)]
    dir: NodeDir,
}

#[derive(Args)]
pub struct EntriesArgs {
    /// exchange, access, decision, negotiation, signature, revocation, token, user, consent.
    #[arg(long)]
    kind: Option<String>,
    #[arg(long)]
    peer: Option<String>,
    #[arg(long)]
    product: Option<String>,
    #[arg(long)]
    agreement: Option<String>,
    #[arg(long)]
    purpose: Option<String>,
    /// Outcomes starting with this (`refused` matches `refused: …`).
    #[arg(long)]
    outcome: Option<String>,
    /// RFC 3339 time: entries at or after it.
    #[arg(long)]
    from: Option<chrono::DateTime<chrono::Utc>>,
    /// RFC 3339 time: entries before it.
    #[arg(long)]
    until: Option<chrono::DateTime<chrono::Utc>>,
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// One JSON object per line instead of a table.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// CSV with a header row instead of a table (for a spreadsheet).
    #[arg(long)]
    csv: bool,
    #[command(flatten)]
    dir: NodeDir,
}

pub async fn run(cmd: AuditCmd) -> Result<()> {
    match cmd {
        AuditCmd::Verify(a) => verify(a).await,
        AuditCmd::Entries(a) => entries(a).await,
    }
}

/// Where the log is read from.
enum Source {
    Dir(Node),
    Api {
        base: String,
        token: String,
        http: reqwest::Client,
    },
}

impl Source {
    async fn get(&self, path: &str) -> Result<Vec<u8>> {
        match self {
            Source::Dir(_) => unreachable!("a data directory is read through the node"),
            Source::Api { base, token, http } => {
                let url = format!("{base}/api/v1/tlog/{path}");
                let resp = http
                    .get(&url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .with_context(|| format!("cannot reach {url}"))?;
                let status = resp.status();
                let body = resp.bytes().await?.to_vec();
                if !status.is_success() {
                    bail!(
                        "{url} answered {status}: {}",
                        String::from_utf8_lossy(&body)
                            .chars()
                            .take(300)
                            .collect::<String>()
                    );
                }
                Ok(body)
            }
        }
    }

    async fn checkpoint(&self) -> Result<String> {
        match self {
            Source::Dir(n) => n
                .log_checkpoint()
                .await?
                .ok_or_else(|| anyhow!("the node has signed no checkpoint of its log yet")),
            Source::Api { .. } => Ok(String::from_utf8(self.get("checkpoint").await?)?),
        }
    }

    /// The subject tags entry `index` commits to.
    async fn subject_tags(&self, index: u64) -> Result<Vec<tlog::SubjectTag>> {
        let tags = match self {
            Source::Dir(n) => n
                .log_subjects(index)
                .await?
                .map(|s| s.tags().to_vec())
                .ok_or_else(|| anyhow!("the node keeps no subject tags for entry {index}"))?,
            Source::Api { .. } => {
                let body = self.get(&format!("entries/{index}/subjects")).await?;
                let v: serde_json::Value = serde_json::from_slice(&body)?;
                v["tags"]
                    .as_array()
                    .ok_or_else(|| {
                        anyhow!("the node's subject tags of entry {index} are not a list")
                    })?
                    .iter()
                    .map(|t| {
                        t.as_str()
                            .and_then(|t| hex::decode(t).ok())
                            .and_then(|b| tlog::SubjectTag::try_from(b).ok())
                            .ok_or_else(|| {
                                anyhow!(
                                    "entry {index} has a subject tag that is not 64 bytes in hex"
                                )
                            })
                    })
                    .collect::<Result<_>>()?
            }
        };
        Ok(tags)
    }

    async fn bundle(&self, index: u64, width: u32) -> Result<Vec<u8>> {
        match self {
            Source::Dir(n) => n
                .log_bundle(index, width)
                .await?
                .ok_or_else(|| anyhow!("entry bundle {index} is missing")),
            Source::Api { .. } => {
                self.get(&format!("tile/{}", tlog::tile_path(None, index, width)))
                    .await
            }
        }
    }

    async fn tile(&self, (level, index): TileKey, width: u32) -> Result<Vec<u8>> {
        match self {
            Source::Dir(n) => n
                .log_tile(level, index, width)
                .await?
                .ok_or_else(|| anyhow!("tile {level}/{index} is missing or too narrow")),
            Source::Api { .. } => {
                self.get(&format!(
                    "tile/{}",
                    tlog::tile_path(Some(level), index, width)
                ))
                .await
            }
        }
    }
}

/// The keys a checkpoint is checked with: the node's own (when known) and the root's.
struct Keys {
    node: Option<[u8; 32]>,
    root: Option<[u8; 32]>,
}

async fn verify(a: VerifyArgs) -> Result<()> {
    let (source, keys) = match &a.node {
        Some(url) => {
            let token = a.token.clone().ok_or_else(|| {
                anyhow!("give an auditor's API token with --token (or AGORA_TOKEN)")
            })?;
            let root = match &a.root {
                Some(p) => Some(root_key(p)?),
                None => None,
            };
            let http = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()?;
            let base = url.trim_end_matches('/').to_owned();
            (Source::Api { base, token, http }, Keys { node: None, root })
        }
        None => {
            let node = open(&a.dir).await?;
            let Some(trust) = node.trust() else {
                // Not enrolled: no key has signed the log; its tree is checked against
                // the root the store committed.
                for line in unsigned(&node).await? {
                    println!("{line}");
                }
                return Ok(());
            };
            let m = trust.material();
            let keys = Keys {
                node: Some(m.key.public()),
                root: Some(m.root_info.public_key),
            };
            (Source::Dir(node), keys)
        }
    };
    let report = check(&source, &keys).await?;
    for line in report {
        println!("{line}");
    }
    Ok(())
}

fn root_key(path: &PathBuf) -> Result<[u8; 32]> {
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the root certificate {}", path.display()))?;
    let certs = agora_trust::pki::certs_from_pem(&pem)?;
    let cert = certs
        .first()
        .ok_or_else(|| anyhow!("{} holds no certificate", path.display()))?;
    Ok(agora_trust::inspect(cert)?.public_key)
}

/// Checks the log; the lines of the report, or the first problem found.
async fn check(source: &Source, keys: &Keys) -> Result<Vec<String>> {
    let note = source.checkpoint().await?;
    let claimed = tlog::read_checkpoint(note.as_bytes())?;
    let origin = claimed.origin().to_owned();
    let (ecosystem, member) = origin
        .strip_prefix("agora/")
        .and_then(|r| r.rsplit_once('/'))
        .ok_or_else(|| anyhow!("{origin:?} is not the name of an Agora member's log"))?;
    let mut report = vec![format!(
        "Checkpoint of {origin}: {} entries, root {}",
        claimed.size(),
        hex::encode(claimed.hash().0)
    )];
    let by_node = keys
        .node
        .map(|k| tlog::open_checkpoint(note.as_bytes(), &origin, &k).is_ok());
    let witness = agora_model::witness_name(ecosystem);
    let root = keys.root.ok_or_else(|| {
        anyhow!("give the ecosystem's root certificate with --root to check who signed the log")
    })?;
    let witnessed = tlog::check_cosignature(note.as_bytes(), &witness, &root);
    match (by_node, &witnessed) {
        (Some(true), _) => report.push(format!("  signed by {member}'s node key: yes")),
        // The authority checked the signature with the certificate the node presented
        // before it cosigned: a key since renewed is vouched for by the cosignature.
        (Some(false), Ok(_)) => report.push(format!(
            "  signed by an earlier key of {member}'s node (renewed since), which the authority checked before cosigning"
        )),
        (Some(false), Err(_)) => {
            bail!("the checkpoint is signed neither by the node's key nor cosigned by the authority")
        }
        (None, _) => report.push(format!(
            "  signed by {member}'s node key: checked by the authority before cosigning"
        )),
    }
    match witnessed {
        Ok(t) => report.push(format!(
            "  witnessed: cosigned by the authority ({witness}) at {}",
            chrono::DateTime::from_timestamp(t as i64, 0)
                .map_or_else(|| t.to_string(), |d| d.to_rfc3339())
        )),
        // The node's own signature was checked: a checkpoint not yet witnessed is
        // still the node's word.
        Err(_) if by_node == Some(true) => report
            .push("  witnessed: not yet (the authority has not cosigned this checkpoint)".into()),
        Err(e) => bail!("the checkpoint carries no valid cosignature of the authority: {e}"),
    }
    let Rebuilt {
        entries,
        kinds,
        subjects,
    } = rebuild(source, claimed.size(), *claimed.hash()).await?;
    report.push(format!(
        "  all {entries} entries hash to the checkpoint's root; every tile matches"
    ));
    match tlog::SubjectLine::from_extension(claimed.extension())? {
        Some(line) => report.push(check_subject_index(source, &line, &subjects).await?),
        None => report.push("  subject index: the checkpoint states none".into()),
    }
    let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
    if !kinds.is_empty() {
        report.push(format!("  entries: {}", kinds.join(", ")));
    }
    report.push("The log verifies.".into());
    Ok(report)
}

/// A node not enrolled: its log checked against the root its store committed.
async fn unsigned(node: &Node) -> Result<Vec<String>> {
    let (size, root) = node.log_head().await?;
    let source = Source::Dir(node.clone());
    let Rebuilt { entries, kinds, .. } = rebuild(&source, size, root).await?;
    let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
    Ok(vec![
        format!(
            "Log of {}: {size} entries, root {} (not signed: the node has not joined an ecosystem)",
            node.member(),
            hex::encode(root.0)
        ),
        format!("  all {entries} entries hash to the root the store committed; every tile matches"),
        format!(
            "  entries: {}",
            if kinds.is_empty() {
                "none".into()
            } else {
                kinds.join(", ")
            }
        ),
        "The log verifies (unsigned).".into(),
    ])
}

/// What rebuilding a log found.
struct Rebuilt {
    entries: u64,
    /// Entries per kind.
    kinds: BTreeMap<String, u64>,
    /// The entries that commit to subjects, with their commitments.
    subjects: Vec<(u64, agora_model::SubjectCommitment)>,
}

/// Checks each entry's subject commitment against the tags the node keeps for it, and the
/// subject index the checkpoint states against the index of those tags; the report line.
async fn check_subject_index(
    source: &Source,
    line: &tlog::SubjectLine,
    subjects: &[(u64, agora_model::SubjectCommitment)],
) -> Result<String> {
    let mut all = Vec::with_capacity(subjects.len());
    let mut distinct = std::collections::HashSet::new();
    for (at, c) in subjects {
        let set = tlog::SubjectSet::from_tags(source.subject_tags(*at).await?);
        let root = hex::encode(set.root()?.0);
        if set.len() != c.count || root != c.root {
            bail!(
                "entry {at} commits to {} subjects with root {}, but the tags the node keeps for it are {} with root {root}: they were altered",
                c.count,
                c.root,
                set.len()
            );
        }
        distinct.extend(set.tags().iter().copied());
        all.push((*at, set));
    }
    let index = tlog::SubjectIndex::from_entries(all.iter().map(|(at, s)| (*at, s.tags())))?;
    if index.root()? != line.index {
        bail!(
            "the subject index the checkpoint states is not the index of the entries' subjects: an access was left out of it or added"
        );
    }
    Ok(format!(
        "  subject index: {} entries carry records of {} subjects; the checkpoint's index is theirs",
        subjects.len(),
        distinct.len()
    ))
}

/// Reads every bundle, hashes the entries into a tree, compares each full tile with the
/// one served as it completes and the right edge at the end, and the root.
async fn rebuild(source: &Source, size: u64, root: tlog::Hash) -> Result<Rebuilt> {
    let mut v = LogVerifier::new(size);
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    let mut subjects = Vec::new();
    let mut partial: HashMap<TileKey, Vec<u8>> = HashMap::new();
    let full = 256 * tlog::HASH_SIZE;
    while let Some((index, width)) = v.next_bundle() {
        let data = source.bundle(index, width).await?;
        for (k, e) in v.add_bundle(&data)?.into_iter().enumerate() {
            let at = index * 256 + k as u64;
            let entry = AuditEntry::decode(e).with_context(|| format!("entry {at}"))?;
            *kinds.entry(entry.kind.to_string()).or_default() += 1;
            if let Some(c) = entry.subjects {
                subjects.push((at, c));
            }
        }
        for (key, computed) in v.take_tiles() {
            if computed.len() < full {
                partial.insert(key, computed);
                continue;
            }
            partial.remove(&key);
            compare(source, key, &computed).await?;
        }
    }
    for (key, width) in TileHashes::right_edge(size) {
        let computed = partial
            .get(&key)
            .ok_or_else(|| anyhow!("tile {key:?} of the right edge was not computed"))?;
        debug_assert_eq!(computed.len(), width * tlog::HASH_SIZE);
        compare(source, key, computed).await?;
    }
    let computed = v.root()?;
    if computed != root {
        bail!(
            "the entries hash to root {}, not to the checkpoint's {}: the log was changed after it was signed",
            hex::encode(computed.0),
            hex::encode(root.0)
        );
    }
    Ok(Rebuilt {
        entries: size,
        kinds,
        subjects,
    })
}

async fn compare(source: &Source, key: TileKey, computed: &[u8]) -> Result<()> {
    let width = (computed.len() / tlog::HASH_SIZE) as u32;
    let served = source.tile(key, width).await?;
    if served != computed {
        bail!(
            "the entries do not hash to tile {} that the node serves: an entry or the tile was altered after it was logged",
            tlog::tile_path(Some(key.0), key.1, width)
        );
    }
    Ok(())
}

async fn entries(a: EntriesArgs) -> Result<()> {
    let node = open(&a.dir).await?;
    if let Some(k) = &a.kind
        && agora_model::AuditKind::parse(k).is_none()
    {
        bail!(
            "unknown kind {k:?}: use exchange, access, decision, negotiation, signature, revocation, token, user or consent"
        );
    }
    let found = node
        .audit_entries(&EntryFilter {
            kind: a.kind,
            peer: a.peer,
            product: a.product,
            agreement: a.agreement,
            purpose: a.purpose,
            outcome: a.outcome,
            from: a.from,
            until: a.until,
            reference: None,
            before: None,
            limit: a.limit.clamp(1, 10_000),
        })
        .await?;
    if a.csv {
        return write_csv(&found);
    }
    for e in &found {
        if a.json {
            println!(
                "{}",
                serde_json::json!({"index": e.index, "entry": e.entry})
            );
        } else {
            let x = &e.entry;
            println!(
                "{:>8}  {}  {:<11}  {:<28}  {:<18}  {}",
                e.index,
                x.at.format("%Y-%m-%d %H:%M:%S"),
                x.kind,
                x.actor,
                x.purpose.as_deref().unwrap_or("-"),
                x.outcome
            );
        }
    }
    if found.is_empty() && !a.json {
        println!("No entries match.");
    }
    Ok(())
}

/// The entries as CSV (the model's columns).
fn write_csv(found: &[agora_model::LoggedEntry]) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(agora_model::entries_csv(found).as_bytes())?;
    out.flush()?;
    Ok(())
}
