//! `agora catalog` and `agora sql`: browse and search the catalog, run SQL.

use std::io::Write;

use agora_node::OutputFormat;
use anyhow::Result;
use clap::{Args, Subcommand};
use futures::StreamExt;

use crate::NodeDir;
use crate::cmd::open;
use crate::output;
use crate::product::{ListArgs, ProductCmd, ShowArgs, product};

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

/// How `agora sql` writes its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SqlFormat {
    /// A text table for people (at most --max-rows rows).
    Table,
    /// A JSON array of row objects.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// CSV with a header line.
    Csv,
    /// An Arrow IPC stream (binary: redirect it to a file).
    Arrow,
    /// A Parquet file (binary: redirect it to a file).
    Parquet,
}

impl SqlFormat {
    fn encoding(self) -> Option<OutputFormat> {
        match self {
            Self::Table => None,
            Self::Json => Some(OutputFormat::Json),
            Self::Ndjson => Some(OutputFormat::Ndjson),
            Self::Csv => Some(OutputFormat::Csv),
            Self::Arrow => Some(OutputFormat::ArrowIpc),
            Self::Parquet => Some(OutputFormat::Parquet),
        }
    }

    fn is_binary(self) -> bool {
        matches!(self, Self::Arrow | Self::Parquet)
    }
}

#[derive(Args)]
pub struct SqlArgs {
    /// The query, e.g. "SELECT municipality, count(*) FROM job_seekers GROUP BY 1".
    query: String,
    /// How to write the answer.
    #[arg(long, value_enum, default_value_t = SqlFormat::Table)]
    format: SqlFormat,
    /// Rows shown in table format.
    #[arg(long, default_value_t = 1000)]
    max_rows: usize,
    /// Also say, on stderr, which products the query read and under which agreements
    /// (the table format says so below the table).
    #[arg(long, short)]
    verbose: bool,
    #[command(flatten)]
    dir: NodeDir,
}

pub async fn sql(args: SqlArgs) -> Result<()> {
    use std::io::IsTerminal;
    if args.format.is_binary() && std::io::stdout().is_terminal() {
        anyhow::bail!(
            "{:?} output is binary and stdout is a terminal: redirect it to a file (> result.{}) or pipe it into a program that reads it",
            args.format,
            if args.format == SqlFormat::Arrow {
                "arrows"
            } else {
                "parquet"
            }
        );
    }
    let node = open(&args.dir).await?;
    let who = agora_node::Accessor::command_line();
    let logged = node
        .query_logged(&who, None, &args.query)
        .await
        .map_err(|e| request_hint(e.into()))?;
    let footer = read_under(&logged);
    let outcome = write_answer(&args, logged.result).await;
    node.flush_access_log().await;
    outcome.map_err(request_hint)?;
    if args.format == SqlFormat::Table {
        for line in &footer {
            println!("{line}");
        }
    } else if args.verbose {
        for line in &footer {
            eprintln!("{line}");
        }
    }
    Ok(())
}

/// A refusal for want of an agreement, with the command that asks for one.
fn request_hint(e: anyhow::Error) -> anyhow::Error {
    match agora_node::product_needing_agreement(&e.to_string()) {
        Some((owner, product)) => e.context(format!(
            "no agreement in force for \"{owner}\".{product}; ask for one with: agora agreement request --owner {owner} --product {product} --purpose PURPOSE --justification TEXT --columns COLUMNS"
        )),
        None => e,
    }
}

/// Lines saying what the query read: the products, the agreements and what aggregate
/// agreements' disclosure control did.
fn read_under(q: &agora_node::LoggedQuery) -> Vec<String> {
    let mut lines = Vec::new();
    for (_, a) in &q.agreements {
        lines.push(format!("Read under {}", a.read_line()));
    }
    for n in q.disclosure_notices() {
        lines.push(n);
    }
    lines
}

async fn write_answer(args: &SqlArgs, result: agora_node::QueryResult) -> Result<()> {
    let Some(format) = args.format.encoding() else {
        let (table, total) = result.to_text_table(args.max_rows).await?;
        println!("{table}");
        if total as usize > args.max_rows {
            println!(
                "({} rows; first {} shown — use --format csv for all)",
                total, args.max_rows
            );
        } else {
            println!("({total} {})", if total == 1 { "row" } else { "rows" });
        }
        return Ok(());
    };
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
