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

#[derive(Args)]
pub struct SqlArgs {
    /// The query, e.g. "SELECT municipality, count(*) FROM job_seekers GROUP BY 1".
    query: String,
    /// table, json, ndjson, csv, arrow (Arrow IPC stream) or parquet (redirect those two to a file).
    #[arg(long, default_value = "table")]
    format: String,
    /// Rows shown in table format.
    #[arg(long, default_value_t = 1000)]
    max_rows: usize,
    #[command(flatten)]
    dir: NodeDir,
}

pub async fn sql(args: SqlArgs) -> Result<()> {
    let node = open(&args.dir).await?;
    let result = node.query(&args.query).await?;
    if args.format == "table" {
        let (table, total) = result.to_text_table(args.max_rows).await?;
        println!("{table}");
        if total as usize > args.max_rows {
            println!(
                "({} rows; first {} shown — use --format csv for all)",
                total, args.max_rows
            );
        } else {
            println!("({total} rows)");
        }
        return Ok(());
    }
    let format: OutputFormat = args.format.parse().map_err(anyhow::Error::msg)?;
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
