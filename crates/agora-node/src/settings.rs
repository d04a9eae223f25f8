//! The operator's settings file, `node.toml` in the data directory: the node's limits on
//! queries and on sign-in. Every setting is optional; what is left out keeps its default
//! (safe for a 2-core node with 4 GB of memory).
//!
//! ```toml
//! [queries]
//! max_seconds = 300        # the longest one query may run
//! max_memory_mib = 512     # the memory one query may hold
//! node_memory_mib = 2048   # the memory all queries may hold together
//! max_sql_kib = 256        # the longest SQL text
//! max_nesting = 16         # the deepest nesting of brackets
//! max_depth = 200          # the deepest nesting of expressions and set operations
//! max_plan_size = 20000    # the most expressions and tables in one statement
//!
//! [sign_in]
//! free_attempts = 5        # wrong passwords before each further attempt must wait
//! max_delay_seconds = 900  # the longest wait (it doubles with each further failure)
//! hashing_workers = 2      # password hashes computed at once
//! hashing_queue = 64       # attempts waiting for a hashing worker before refusal
//! ```

use std::path::Path;
use std::time::Duration;

use agora_engine::QueryLimits;
use serde::Deserialize;

use crate::NodeError;

/// The file's name inside the data directory.
pub const FILE: &str = "node.toml";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    queries: Queries,
    #[serde(default)]
    sign_in: SignInFile,
    #[serde(default)]
    citizens: CitizensFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CitizensFile {
    portals: Option<Vec<String>>,
    lookups_per_minute: Option<u64>,
}

/// Which citizen portals this node answers about the people its records are about.
#[derive(Debug, Clone, PartialEq)]
pub struct CitizenSettings {
    /// The members that run a citizen portal for the ecosystem: only they may ask this
    /// node for subject tags and its subject index (none by default). A portal can ask
    /// about anyone whose identifier it knows, so it is named here, by the owner.
    pub portals: Vec<agora_model::MemberId>,
    /// Lookups (tag evaluations and history pages) one portal may ask per minute.
    pub lookups_per_minute: u32,
}

impl Default for CitizenSettings {
    fn default() -> Self {
        Self {
            portals: Vec::new(),
            lookups_per_minute: 600,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Queries {
    max_seconds: Option<u64>,
    max_memory_mib: Option<u64>,
    node_memory_mib: Option<u64>,
    max_sql_kib: Option<u64>,
    max_nesting: Option<u64>,
    max_depth: Option<u64>,
    max_plan_size: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignInFile {
    free_attempts: Option<u64>,
    max_delay_seconds: Option<u64>,
    hashing_workers: Option<u64>,
    hashing_queue: Option<u64>,
}

/// How sign-in withstands guessing.
#[derive(Debug, Clone, PartialEq)]
pub struct SignInLimits {
    /// Wrong passwords (per account, and per client address) before attempts must wait.
    pub free_attempts: u32,
    /// The longest wait between attempts; the wait doubles with each failure past the
    /// free ones, from one second.
    pub max_delay: Duration,
    /// Password hashes computed at once (each takes about 19 MiB for a moment).
    pub hashing_workers: usize,
    /// Attempts that may wait for a hashing worker; more are refused at once.
    pub hashing_queue: usize,
}

impl Default for SignInLimits {
    fn default() -> Self {
        Self {
            free_attempts: 5,
            max_delay: Duration::from_secs(15 * 60),
            hashing_workers: 2,
            hashing_queue: 64,
        }
    }
}

/// What the settings file changes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    pub queries: QueryLimits,
    pub sign_in: SignInLimits,
    pub citizens: CitizenSettings,
}

fn bad(path: &Path, why: impl std::fmt::Display) -> NodeError {
    NodeError::Settings(format!(
        "the settings file {} is not valid: {why}; fix it or remove the setting to use its default",
        path.display()
    ))
}

/// `value` when it lies in `min..=max`, else an error naming the setting.
fn within(path: &Path, name: &str, value: u64, min: u64, max: u64) -> Result<u64, NodeError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(bad(
            path,
            format!("{name} is {value}; it must lie between {min} and {max}"),
        ))
    }
}

impl Settings {
    /// The settings in `data_dir/node.toml` over `base`; `base` alone when there is no file.
    pub fn load(data_dir: &Path, base: Settings) -> Result<Settings, NodeError> {
        let path = data_dir.join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(base),
            Err(e) => return Err(bad(&path, e)),
        };
        Self::parse(&path, &text, base)
    }

    fn parse(path: &Path, text: &str, base: Settings) -> Result<Settings, NodeError> {
        let file: File = toml::from_str(text).map_err(|e| bad(path, e.message()))?;
        let mut s = base;
        let q = &file.queries;
        let limit =
            |name, v: Option<u64>, min, max| v.map(|v| within(path, name, v, min, max)).transpose();
        if let Some(v) = limit("queries.max_seconds", q.max_seconds, 1, 86_400)? {
            s.queries.query_time = Duration::from_secs(v);
        }
        if let Some(v) = limit("queries.max_memory_mib", q.max_memory_mib, 16, 1 << 20)? {
            s.queries.query_memory = (v as usize) << 20;
        }
        if let Some(v) = limit("queries.node_memory_mib", q.node_memory_mib, 16, 1 << 22)? {
            s.queries.node_memory = (v as usize) << 20;
        }
        if let Some(v) = limit("queries.max_sql_kib", q.max_sql_kib, 1, 4096)? {
            s.queries.max_sql_bytes = (v as usize) << 10;
        }
        // The parser's cost grows fourfold per bracket level; beyond 20 a short text
        // could hold a worker for seconds.
        if let Some(v) = limit("queries.max_nesting", q.max_nesting, 1, 20)? {
            s.queries.max_nesting = v as usize;
        }
        if let Some(v) = limit("queries.max_depth", q.max_depth, 1, 1000)? {
            s.queries.max_depth = v as usize;
        }
        if let Some(v) = limit("queries.max_plan_size", q.max_plan_size, 1, 200_000)? {
            s.queries.max_plan_size = v as usize;
        }
        if s.queries.query_memory > s.queries.node_memory {
            return Err(bad(
                path,
                "queries.max_memory_mib is more than queries.node_memory_mib",
            ));
        }
        let i = &file.sign_in;
        if let Some(v) = limit("sign_in.free_attempts", i.free_attempts, 1, 100)? {
            s.sign_in.free_attempts = v as u32;
        }
        if let Some(v) = limit("sign_in.max_delay_seconds", i.max_delay_seconds, 1, 86_400)? {
            s.sign_in.max_delay = Duration::from_secs(v);
        }
        if let Some(v) = limit("sign_in.hashing_workers", i.hashing_workers, 1, 64)? {
            s.sign_in.hashing_workers = v as usize;
        }
        if let Some(v) = limit("sign_in.hashing_queue", i.hashing_queue, 0, 10_000)? {
            s.sign_in.hashing_queue = v as usize;
        }
        let c = &file.citizens;
        if let Some(portals) = &c.portals {
            s.citizens.portals = portals
                .iter()
                .map(|p| {
                    agora_model::MemberId::parse(p)
                        .map_err(|e| bad(path, format!("citizens.portals names {p:?}: {e}")))
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = limit(
            "citizens.lookups_per_minute",
            c.lookups_per_minute,
            1,
            100_000,
        )? {
            s.citizens.lookups_per_minute = v as u32;
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Settings, NodeError> {
        Settings::parse(Path::new("node.toml"), text, Settings::default())
    }

    #[test]
    fn an_empty_file_keeps_the_defaults() {
        assert_eq!(parse("").unwrap(), Settings::default());
    }

    #[test]
    fn settings_replace_only_what_they_name() {
        let s = parse(
            "[queries]\nmax_seconds = 30\nmax_memory_mib = 64\n[sign_in]\nfree_attempts = 3\n",
        )
        .unwrap();
        assert_eq!(s.queries.query_time, Duration::from_secs(30));
        assert_eq!(s.queries.query_memory, 64 << 20);
        assert_eq!(s.queries.max_depth, QueryLimits::default().max_depth);
        assert_eq!(s.sign_in.free_attempts, 3);
        assert_eq!(s.sign_in.hashing_workers, 2);
    }

    #[test]
    fn bad_settings_are_named() {
        for (text, needle) in [
            ("[queries]\nmax_secs = 3\n", "max_secs"),
            ("[queries]\nmax_seconds = 0\n", "queries.max_seconds is 0"),
            ("[queries]\nmax_nesting = 50\n", "queries.max_nesting is 50"),
            ("[queries]\nmax_seconds = \"ten\"\n", "invalid type"),
            (
                "[queries]\nmax_memory_mib = 4096\nnode_memory_mib = 1024\n",
                "more than queries.node_memory_mib",
            ),
            ("[queries\n", "node.toml"),
            ("[other]\n", "other"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
            assert!(e.contains("node.toml is not valid"), "{e}");
        }
    }
}
