//! `agora demo-data`: the demo ecosystem's data as Parquet.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::output;

#[derive(Args)]
pub struct DemoDataArgs {
    /// Number of residents.
    #[arg(long, default_value_t = 100_000)]
    scale: u64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output directory (replaced).
    #[arg(long)]
    out: PathBuf,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

pub fn demo_data(args: DemoDataArgs) -> Result<()> {
    let summary = generate_with_bar(args.scale, args.seed, &args.out, args.threads)?;
    output::gen_summary(&summary);
    Ok(())
}

pub fn generate_with_bar(
    scale: u64,
    seed: u64,
    out: &std::path::Path,
    threads: usize,
) -> Result<agora_datagen::GenSummary> {
    let bar = ProgressBar::new(scale);
    bar.set_style(
        ProgressStyle::with_template(
            "generating [{bar:30}] {human_pos}/{human_len} residents ({per_sec}, {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let b = bar.clone();
    let mut opts = agora_datagen::GenOptions::new(scale, seed, out);
    opts.threads = threads;
    let summary = agora_datagen::generate(&opts, &move |done| b.set_position(done));
    bar.finish_and_clear();
    Ok(summary?)
}
