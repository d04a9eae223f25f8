//! `agora product`: register, list, show, update and remove this node's data products.

use std::collections::BTreeMap;
use std::time::Duration;

use agora_model::{
    Classification, ColumnAnnotation, ColumnRole, MetadataPatch, PageRequest, Retention,
    SourceFormat, Theme, UpdateFrequency,
};
use agora_node::{ProfileProgress, RegisterRequest};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::NodeDir;
use crate::cmd::open;
use crate::output;

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
    /// A keyword (repeatable). On `update`, the keywords given replace all the product's
    /// keywords; use --add-keyword and --remove-keyword to change some.
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
    /// Change a product's metadata (only what is given changes).
    Update {
        name: String,
        #[command(flatten)]
        meta: MetaArgs,
        /// Add a keyword to those the product has (repeatable).
        #[arg(long, conflicts_with = "keywords")]
        add_keyword: Vec<String>,
        /// Remove a keyword from those the product has (repeatable).
        #[arg(long, conflicts_with = "keywords")]
        remove_keyword: Vec<String>,
        #[command(flatten)]
        dir: NodeDir,
    },
    /// Remove a product's registration (the data is not touched). Refused while other
    /// members read it under agreements in force, unless they are revoked with it.
    Remove {
        name: String,
        /// Revoke the agreements in force that other members read the product under.
        #[arg(long)]
        revoke_agreements: bool,
        #[command(flatten)]
        dir: NodeDir,
    },
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub(crate) page: PageArgs,
    #[command(flatten)]
    pub(crate) dir: NodeDir,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
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
    pub(crate) fn request(&self) -> PageRequest {
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
                return Ok(());
            }
            output::product_details(&p);
            // Who reads it: the agreements in force (checked) other members hold for it.
            let readers: Vec<_> = node
                .agreements_in_force(agora_model::NegotiationRole::Provider)
                .await?
                .into_values()
                .filter_map(|n| n.agreement)
                .filter(|a| a.product == p.name)
                .collect();
            if readers.is_empty() && p.metadata.classification.needs_agreement() {
                println!("No other member reads it under an agreement in force.");
            }
            for a in readers {
                println!(
                    "Read by {} under agreement {} ({}, for {}, until {}).",
                    a.consumer,
                    a.id,
                    a.terms.mode,
                    a.purpose,
                    a.valid_until.format("%Y-%m-%d")
                );
            }
            Ok(())
        }
        ProductCmd::Update {
            name,
            meta,
            add_keyword,
            remove_keyword,
            dir,
        } => {
            let node = open(&dir).await?;
            let mut patch = meta.into_patch()?;
            if !add_keyword.is_empty() || !remove_keyword.is_empty() {
                let mut keywords = node.product(&name).await?.metadata.keywords;
                keywords.retain(|k| !remove_keyword.contains(k));
                for k in add_keyword {
                    if !keywords.contains(&k) {
                        keywords.push(k);
                    }
                }
                patch.keywords = Some(keywords);
            }
            let p = node.update_metadata(&name, patch).await?;
            println!("Updated {} (version {}).", p.name, p.version);
            if !p.metadata.keywords.is_empty() {
                println!("Keywords: {}", p.metadata.keywords.join(", "));
            }
            Ok(())
        }
        ProductCmd::Remove {
            name,
            revoke_agreements,
            dir,
        } => {
            let node = open(&dir).await?;
            let revoked = node.remove_product(&name, revoke_agreements).await?;
            node.deliver_outbox().await?;
            for id in &revoked {
                println!("Revoked agreement {id}.");
            }
            println!("Removed {name}. Its data was not touched.");
            Ok(())
        }
    }
}
