//! Deterministic generator of the demo ecosystem's data (PRODUCT.md, "The demo ecosystem").
//!
//! Residents are processed in fixed-size chunks. Each chunk has its own ChaCha stream
//! (seed, chunk index), generates every member's rows about its residents, and writes one
//! Parquet part per table. The output therefore depends only on the seed and the scale,
//! never on the number of threads, and chunks run in parallel on every core.
//!
//! Layout of the output directory:
//! ```text
//! OUT/<member-id>/<table>/part-00000.parquet ...
//! OUT/<member-id>/<table>/agora.toml            sidecar metadata (titles, roles, ...)
//! OUT/MANIFEST.json                             written last: scale, seed, row counts
//! ```

mod census;
mod chunk;
mod sidecars;
mod tables;
mod vocab;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use tables::TABLES;

/// Bumped whenever the generated content changes, so caches can tell stale data apart.
pub const GENERATOR_VERSION: u32 = 2;
/// Residents per chunk (and so per Parquet part).
pub const CHUNK_RESIDENTS: u64 = 131_072;

#[derive(Debug, thiserror::Error)]
pub enum GenError {
    #[error("cannot write demo data under {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode demo table {table} as Parquet: {message}")]
    Encode { table: String, message: String },
    #[error("the scale must be at least 100 residents (got {0})")]
    ScaleTooSmall(u64),
}

impl GenError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}

#[derive(Debug, Clone)]
pub struct GenOptions {
    pub residents: u64,
    pub seed: u64,
    pub out: PathBuf,
    /// Worker threads; 0 means one per available core.
    pub threads: usize,
    /// Residents per chunk (and so per Parquet part). Part of what determines the output.
    pub chunk_residents: u64,
}

impl GenOptions {
    pub fn new(residents: u64, seed: u64, out: impl Into<PathBuf>) -> Self {
        Self {
            residents,
            seed,
            out: out.into(),
            threads: 0,
            chunk_residents: CHUNK_RESIDENTS,
        }
    }
}

/// Rows written per (member, table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSummary {
    pub member: &'static str,
    pub table: &'static str,
    pub rows: u64,
    pub path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct GenSummary {
    pub residents: u64,
    pub seed: u64,
    pub tables: Vec<TableSummary>,
    pub elapsed: Duration,
}

impl GenSummary {
    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }
}

/// Generates the whole demo data set into `opts.out` (replacing what was there).
///
/// Output is first written to a sibling `.partial` directory and moved into place at the
/// end, so an interrupted run never leaves a directory that looks complete.
/// `progress` is called with the number of residents done so far.
pub fn generate(
    opts: &GenOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<GenSummary, GenError> {
    if opts.residents < 100 {
        return Err(GenError::ScaleTooSmall(opts.residents));
    }
    let start = Instant::now();
    let partial = partial_dir(&opts.out);
    if partial.exists() {
        fs::remove_dir_all(&partial).map_err(|e| GenError::io(&partial, e))?;
    }
    for (member, table) in TABLES {
        let dir = partial.join(member).join(table);
        fs::create_dir_all(&dir).map_err(|e| GenError::io(&dir, e))?;
    }

    let chunk_size = opts.chunk_residents.max(1);
    let n_chunks = opts.residents.div_ceil(chunk_size) as usize;
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        opts.threads
    }
    .min(n_chunks)
    .max(1);

    let next = AtomicUsize::new(0);
    let done = AtomicU64::new(0);
    let counts = Mutex::new(vec![0u64; TABLES.len()]);
    let first_error: Mutex<Option<GenError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let c = next.fetch_add(1, Ordering::Relaxed);
                    if c >= n_chunks || first_error.lock().expect("lock").is_some() {
                        break;
                    }
                    let lo = c as u64 * chunk_size;
                    let hi = (lo + chunk_size).min(opts.residents);
                    match chunk::generate_chunk(opts.seed, c as u64, lo, hi, &partial) {
                        Ok(rows) => {
                            let mut counts = counts.lock().expect("lock");
                            for (t, r) in rows.iter().enumerate() {
                                counts[t] += r;
                            }
                            drop(counts);
                            let d = done.fetch_add(hi - lo, Ordering::Relaxed) + (hi - lo);
                            progress(d);
                        }
                        Err(e) => {
                            first_error.lock().expect("lock").get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().expect("lock") {
        return Err(e);
    }

    let census_rows = census::write_census(&partial)?;
    sidecars::write_sidecars(&partial)?;

    let counts = counts.into_inner().expect("lock");
    let mut tables: Vec<TableSummary> = TABLES
        .iter()
        .zip(&counts)
        .map(|((member, table), rows)| TableSummary {
            member,
            table,
            rows: *rows,
            path: opts.out.join(member).join(table),
        })
        .collect();
    tables.push(TableSummary {
        member: census::MEMBER,
        table: census::TABLE,
        rows: census_rows,
        path: opts.out.join(census::MEMBER).join(census::TABLE),
    });

    let manifest = manifest_json(opts, &tables);
    let mpath = partial.join("MANIFEST.json");
    fs::write(&mpath, manifest).map_err(|e| GenError::io(&mpath, e))?;

    if opts.out.exists() {
        fs::remove_dir_all(&opts.out).map_err(|e| GenError::io(&opts.out, e))?;
    }
    fs::rename(&partial, &opts.out).map_err(|e| GenError::io(&opts.out, e))?;

    Ok(GenSummary {
        residents: opts.residents,
        seed: opts.seed,
        tables,
        elapsed: start.elapsed(),
    })
}

/// True when `out` holds complete data generated with these options and this generator.
pub fn is_complete(opts: &GenOptions) -> bool {
    fs::read_to_string(opts.out.join("MANIFEST.json"))
        .is_ok_and(|text| text.starts_with(&manifest_head(opts)))
}

fn manifest_head(opts: &GenOptions) -> String {
    format!(
        "{{\n  \"generator_version\": {GENERATOR_VERSION},\n  \"residents\": {},\n  \"seed\": {},\n  \"chunk_residents\": {},\n",
        opts.residents, opts.seed, opts.chunk_residents
    )
}

/// Every (member, table) directory the generator writes, including the census sample.
pub fn all_tables() -> Vec<(&'static str, &'static str)> {
    let mut v: Vec<_> = TABLES.to_vec();
    v.push((census::MEMBER, census::TABLE));
    v
}

fn partial_dir(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    out.with_file_name(name)
}

fn manifest_json(opts: &GenOptions, tables: &[TableSummary]) -> String {
    let mut s = manifest_head(opts);
    s.push_str("  \"tables\": [\n");
    for (i, t) in tables.iter().enumerate() {
        s.push_str(&format!(
            "    {{\"member\": \"{}\", \"table\": \"{}\", \"rows\": {}}}{}\n",
            t.member,
            t.table,
            t.rows,
            if i + 1 < tables.len() { "," } else { "" }
        ));
    }
    s.push_str("  ]\n}\n");
    s
}
