//! The node's metadata store: node identity, data products, search index and API tokens.
//!
//! One code path for both back ends: SQLite (a file in the node's data directory, WAL mode)
//! and PostgreSQL (a `postgres://` URL), through sqlx's `Any` driver with portable SQL and
//! `$n` placeholders, and the same versioned migrations (`migrations/`).

mod access;
mod authority;
mod citizens;
mod consent;
mod exchange;
mod journal;
mod negotiations;
mod search;
mod security;
mod tlog;
mod tokens;
mod users;
mod witness;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use agora_model::{
    ApiRole, AuditEntry, AuditKind, Classification, MemberId, Page, PageRequest, Product,
    ProductMetadata, ProductName, SearchHit,
};
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

pub use access::{AccessRecord, AccessStart};
pub use authority::{AdmittedMember, AuthorityRecord, IssuedCertificate};
pub use citizens::CitizenSession;
pub use exchange::OfferSource;
pub use negotiations::{OutboxMessage, PolicyDecisionRecord};
pub use search::{SearchFilter, SearchScope, tokenize};
pub use security::SecurityEvent;
pub use tlog::StoredCheckpoint;
pub use tokens::{Authenticated, NewToken, TokenInfo};
pub use users::{NewSession, UserInfo, WebSession};
pub use witness::{WitnessAlert, Witnessed};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the metadata store at {location}: {source}")]
    Open {
        location: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot bring the metadata store schema up to date: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported store URL {0:?}: use a sqlite:// path or a postgres:// URL")]
    UnsupportedUrl(String),
    #[error("a data product named {0:?} already exists; choose another name or remove it first")]
    DuplicateProduct(String),
    #[error("no data product named {0:?}")]
    ProductNotFound(String),
    #[error("data product {0:?} was changed by someone else meanwhile; reload it and try again")]
    Conflict(String),
    #[error("the node is already initialised as member {0:?}")]
    AlreadyInitialised(String),
    #[error("a user named {0:?} already exists; choose another name")]
    DuplicateUser(String),
    #[error("no user named {0:?} (or the user is already disabled)")]
    UserNotFound(String),
    #[error("no API token with id {0:?}")]
    TokenNotFound(String),
    #[error("member {0:?} is not known to this authority; admit it first")]
    MemberNotFound(String),
    #[error("member {0:?} has been revoked; a revoked member cannot be admitted or revoked again")]
    MemberRevoked(String),
    #[error("no certificate with fingerprint {0:?} (or it is already revoked)")]
    CertificateNotFound(String),
    #[error("enrolment refused: {0}")]
    EnrolmentRefused(String),
    #[error("replayed request refused: member {peer} already sent nonce {nonce}")]
    Replay { peer: String, nonce: String },
    #[error("a negotiation with id {0:?} is already recorded")]
    NegotiationExists(String),
    #[error("no negotiation with id {0:?}")]
    NegotiationNotFound(String),
    #[error(
        "negotiation {id} is {actual}, no longer {expected}: someone else moved it meanwhile; look at it again"
    )]
    NegotiationMoved {
        id: String,
        expected: String,
        actual: String,
    },
    #[error("{0} is busy; try again")]
    Busy(String),
    #[error("stored record {what} is corrupt: {message}")]
    Corrupt { what: String, message: String },
    #[error("cannot write the exchange log: {0}")]
    ExchangeLog(String),
    #[error("the transparency log: {0}")]
    TransparencyLog(String),
    #[error("metadata store query failed: {0}")]
    Query(#[from] sqlx::Error),
}

/// Which database the store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The identity this node was initialised with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    pub member_id: MemberId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Writes the exchange log (see `journal`).
    journal: std::sync::Arc<journal::Journal>,
    /// Full tiles of the transparency log, kept for proofs.
    tiles: std::sync::Arc<tlog::TileCache>,
}

/// Creates `dir` (and missing parents) readable by this user only (0700, Unix); a folder
/// that exists is left as its owner set it.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

/// Creates the file `path` empty with mode 0600 if it is missing; narrows an existing one
/// and its SQLite companions (`-wal`, `-shm`) to 0600 (Unix).
fn private_file(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let p = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
            match std::fs::metadata(&p) {
                Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))?;
                }
                _ => {}
            }
        }
    }
    let _ = path;
    Ok(())
}

pub(crate) fn now() -> String {
    ts(Utc::now())
}

pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(crate) fn parse_ts(s: &str, what: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt {
            what: what.to_owned(),
            message: e.to_string(),
        })
}

pub(crate) fn json<T: serde::de::DeserializeOwned>(s: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt {
        what: what.to_owned(),
        message: e.to_string(),
    })
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("model types serialise to JSON")
}

impl Store {
    /// Opens (creating if needed) the SQLite store `agora.db` in a data directory.
    ///
    /// The store holds password and token hashes: a missing folder is created readable by
    /// the node's own user only (0700) and `agora.db` created 0600 before SQLite opens it
    /// (SQLite gives its WAL and shared-memory files the database file's mode). Files of
    /// an older version with wider modes are narrowed.
    pub async fn open_in_dir(dir: &Path) -> Result<Self, StoreError> {
        let data_dir = |e| StoreError::DataDir {
            path: dir.display().to_string(),
            source: e,
        };
        private_dir(dir).map_err(data_dir)?;
        let path = dir.join("agora.db");
        private_file(&path).map_err(data_dir)?;
        Self::open(&format!("sqlite://{}?mode=rwc", path.display())).await
    }

    /// Opens a store from a URL (`sqlite://PATH?mode=rwc`, `sqlite::memory:` or
    /// `postgres://...`) and applies pending migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(redact(url)));
        };
        let memory = url.contains(":memory:");
        let mut opts = AnyPoolOptions::new()
            .acquire_timeout(Duration::from_secs(10))
            .max_connections(if memory { 1 } else { 8 });
        if backend == Backend::Sqlite {
            // An SQLite connection is a file handle in this process, not a socket that a
            // server or network can close: checking it with a round trip to its worker
            // thread before every use (sqlx's default) only doubles the cost of each call.
            opts = opts
                .test_before_acquire(false)
                .after_connect(move |conn, _| Box::pin(sqlite_setup(conn, memory)));
        }
        let pool = opts.connect(url).await.map_err(|e| StoreError::Open {
            location: redact(url),
            source: e,
        })?;
        MIGRATOR.run(&pool).await?;
        let source = if memory {
            journal::Source::Pool(pool.clone())
        } else {
            journal::Source::Own {
                url: url.to_owned(),
                pool: pool.clone(),
            }
        };
        Ok(Self {
            journal: std::sync::Arc::new(journal::Journal::start(source)),
            tiles: Default::default(),
            pool,
            backend,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Cheap liveness check for readiness probes.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").fetch_one(&self.pool).await?;
        Ok(())
    }

    /// Writes what is still queued for the exchange log, then closes every connection.
    pub async fn close(&self) {
        self.journal.close().await;
        self.pool.close().await;
    }

    // ---- node identity ----

    pub async fn node(&self) -> Result<Option<NodeRecord>, StoreError> {
        let row = sqlx::query("SELECT member_id, name, created_at FROM node WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            let member: String = r.try_get(0)?;
            Ok(NodeRecord {
                member_id: MemberId::parse(&member).map_err(|e| StoreError::Corrupt {
                    what: "node".into(),
                    message: e.to_string(),
                })?,
                name: r.try_get(1)?,
                created_at: parse_ts(&r.try_get::<String, _>(2)?, "node")?,
            })
        })
        .transpose()
    }

    /// Records the node's identity and creates its first administrator token, atomically.
    pub async fn init_node(
        &self,
        member: &MemberId,
        name: &str,
    ) -> Result<(NodeRecord, NewToken), StoreError> {
        let mut tx = self.pool.begin().await?;
        let existing = sqlx::query("SELECT member_id FROM node WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(r) = existing {
            return Err(StoreError::AlreadyInitialised(r.try_get(0)?));
        }
        let created = Utc::now();
        sqlx::query("INSERT INTO node (id, member_id, name, created_at) VALUES (1, $1, $2, $3)")
            .bind(member.as_str())
            .bind(name)
            .bind(ts(created))
            .execute(&mut *tx)
            .await?;
        let token = tokens::insert_token(&mut tx, "initial administrator", ApiRole::Admin).await?;
        tx.commit().await?;
        self.log_one(
            AuditEntry::new(AuditKind::Token, format!("token:{}", token.info.id), "node")
                .outcome("issued")
                .with("label", "initial administrator")
                .with("role", ApiRole::Admin.as_str()),
        )
        .await?;
        Ok((
            NodeRecord {
                member_id: member.clone(),
                name: name.to_owned(),
                created_at: created,
            },
            token,
        ))
    }

    // ---- products ----

    /// Inserts a fully-computed product, with its search terms, in one transaction.
    pub async fn insert_product(&self, p: &Product) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let res = sqlx::query(
            "INSERT INTO products (id, name, title, owner, classification, source_json, schema_json, \
             metadata_json, profile_json, created_at, updated_at, version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&p.id)
        .bind(p.name.as_str())
        .bind(&p.metadata.title)
        .bind(p.metadata.owner.as_str())
        .bind(p.metadata.classification.as_str())
        .bind(to_json(&p.source))
        .bind(to_json(&p.schema))
        .bind(to_json(&p.metadata))
        .bind(to_json(&p.profile))
        .bind(ts(p.created_at))
        .bind(ts(p.updated_at))
        .bind(p.version)
        .execute(&mut *tx)
        .await;
        match res {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(StoreError::DuplicateProduct(p.name.to_string()));
            }
            r => {
                r?;
            }
        }
        search::insert_terms(&mut tx, p).await?;
        bump_catalog_version(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_product(&self, name: &str) -> Result<Option<Product>, StoreError> {
        let row = sqlx::query(PRODUCT_SELECT_BY_NAME)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| product_from_row(&r)).transpose()
    }

    /// Every product, ordered by name (for the engine's table registry).
    pub async fn all_products(&self) -> Result<Vec<Product>, StoreError> {
        let rows = sqlx::query(PRODUCT_SELECT_ALL)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(product_from_row).collect()
    }

    /// A number that changes whenever a product is added, changed or removed, by any
    /// process sharing this store. Cheap: one primary-key lookup.
    pub async fn catalog_version(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT catalog_version FROM node WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => r.try_get(0)?,
            None => 0,
        })
    }

    /// A page of products ordered by name.
    pub async fn list_products(&self, page: PageRequest) -> Result<Page<Product>, StoreError> {
        let total: i64 = sqlx::query("SELECT COUNT(*) FROM products")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        let rows = sqlx::query(PRODUCT_SELECT_PAGE)
            .bind(i64::from(page.per_page))
            .bind(page.offset() as i64)
            .fetch_all(&self.pool)
            .await?;
        Ok(Page {
            items: rows
                .iter()
                .map(product_from_row)
                .collect::<Result<_, _>>()?,
            page: page.page,
            per_page: page.per_page,
            total: total as u64,
        })
    }

    /// Replaces a product's metadata if it is still at `expected_version`.
    pub async fn update_metadata(
        &self,
        name: &ProductName,
        metadata: &ProductMetadata,
        expected_version: i64,
    ) -> Result<Product, StoreError> {
        let mut tx = self.pool.begin().await?;
        let updated = Utc::now();
        let res = sqlx::query(
            "UPDATE products SET title = $1, classification = $2, metadata_json = $3, \
             updated_at = $4, version = version + 1 WHERE name = $5 AND version = $6",
        )
        .bind(&metadata.title)
        .bind(metadata.classification.as_str())
        .bind(to_json(metadata))
        .bind(ts(updated))
        .bind(name.as_str())
        .bind(expected_version)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() == 0 {
            let exists = sqlx::query("SELECT 1 FROM products WHERE name = $1")
                .bind(name.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            return Err(if exists {
                StoreError::Conflict(name.to_string())
            } else {
                StoreError::ProductNotFound(name.to_string())
            });
        }
        let row = sqlx::query(PRODUCT_SELECT_BY_NAME)
            .bind(name.as_str())
            .fetch_one(&mut *tx)
            .await?;
        let product = product_from_row(&row)?;
        search::delete_terms(&mut tx, &product.id).await?;
        search::insert_terms(&mut tx, &product).await?;
        bump_catalog_version(&mut tx).await?;
        tx.commit().await?;
        Ok(product)
    }

    /// Removes a product (its registration; the data itself is never touched).
    pub async fn delete_product(&self, name: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let id: Option<String> = sqlx::query("SELECT id FROM products WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        let Some(id) = id else {
            return Err(StoreError::ProductNotFound(name.to_owned()));
        };
        search::delete_terms(&mut tx, &id).await?;
        sqlx::query("DELETE FROM products WHERE id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        bump_catalog_version(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Full-text search over title, description, keywords, themes and column names, of
    /// this node's products or also of the other members' offers.
    pub async fn search(
        &self,
        query: &str,
        page: PageRequest,
        scope: SearchScope,
    ) -> Result<Page<SearchHit>, StoreError> {
        search::search(&self.pool, query, page, scope, &SearchFilter::default()).await
    }

    /// [`Store::search`] narrowed to one owner and/or one classification.
    pub async fn search_filtered(
        &self,
        query: &str,
        page: PageRequest,
        scope: SearchScope,
        filter: &SearchFilter,
    ) -> Result<Page<SearchHit>, StoreError> {
        search::search(&self.pool, query, page, scope, filter).await
    }

    // ---- tokens ----

    /// Issues a token; `actor` (who issued it, as the access log names people) goes into
    /// its log entry.
    pub async fn create_token(
        &self,
        label: &str,
        role: ApiRole,
        actor: &str,
    ) -> Result<NewToken, StoreError> {
        let mut tx = self.pool.begin().await?;
        let t = tokens::insert_token(&mut tx, label, role).await?;
        tx.commit().await?;
        self.log_one(
            AuditEntry::new(AuditKind::Token, format!("token:{}", t.info.id), actor)
                .outcome("issued")
                .with("label", label)
                .with("role", role.as_str()),
        )
        .await?;
        Ok(t)
    }

    /// Checks a token secret; a valid one comes with the current catalog version.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Authenticated>, StoreError> {
        tokens::authenticate(&self.pool, secret).await
    }

    pub async fn list_tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        tokens::list(&self.pool).await
    }

    pub async fn revoke_token(&self, id: &str, actor: &str) -> Result<TokenInfo, StoreError> {
        let t = tokens::revoke(&self.pool, id).await?;
        self.log_one(
            AuditEntry::new(AuditKind::Token, format!("token:{id}"), actor)
                .outcome("revoked")
                .with("label", t.label.clone())
                .with("role", t.role.as_str()),
        )
        .await?;
        Ok(t)
    }
}

/// Sets up an SQLite connection: wait for a busy database, write-ahead logging (a file),
/// foreign keys.
pub(crate) async fn sqlite_setup(
    conn: &mut sqlx::AnyConnection,
    memory: bool,
) -> Result<(), sqlx::Error> {
    conn.execute("PRAGMA busy_timeout = 10000").await?;
    if !memory {
        conn.execute("PRAGMA journal_mode = WAL").await?;
        conn.execute("PRAGMA synchronous = NORMAL").await?;
    }
    conn.execute("PRAGMA foreign_keys = ON").await?;
    Ok(())
}

/// Appends a row numbered one past the table's largest number: `attempt` runs the
/// `INSERT … SELECT COALESCE(MAX(seq), 0) + 1 … RETURNING seq` and returns `Ok(None)` when a
/// concurrent insert took the same number (then it runs again).
pub(crate) async fn insert_numbered<T, F, Fut>(what: &str, mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, StoreError>>,
{
    const INSERT_RETRIES: usize = 16;
    for _ in 0..INSERT_RETRIES {
        if let Some(seq) = attempt().await? {
            return Ok(seq);
        }
    }
    Err(StoreError::Busy(what.into()))
}

/// What [`insert_numbered`]'s attempts make of an insert's result: the number on success,
/// `None` on a unique-key conflict.
pub(crate) fn numbered(res: Result<AnyRow, sqlx::Error>) -> Result<Option<i64>, StoreError> {
    match res {
        Ok(row) => Ok(Some(row.try_get(0)?)),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn bump_catalog_version(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE node SET catalog_version = catalog_version + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

macro_rules! product_select {
    ($rest:literal) => {
        concat!(
            "SELECT id, name, source_json, schema_json, metadata_json, profile_json, \
             created_at, updated_at, version FROM products ",
            $rest
        )
    };
}

const PRODUCT_SELECT_BY_NAME: &str = product_select!("WHERE name = $1");
const PRODUCT_SELECT_ALL: &str = product_select!("ORDER BY name");
const PRODUCT_SELECT_PAGE: &str = product_select!("ORDER BY name LIMIT $1 OFFSET $2");

fn product_from_row(r: &AnyRow) -> Result<Product, StoreError> {
    let name: String = r.try_get(1)?;
    let what = format!("product {name}");
    Ok(Product {
        id: r.try_get(0)?,
        name: ProductName::parse(&name).map_err(|e| StoreError::Corrupt {
            what: what.clone(),
            message: e.to_string(),
        })?,
        source: json(&r.try_get::<String, _>(2)?, &what)?,
        schema: json(&r.try_get::<String, _>(3)?, &what)?,
        metadata: json(&r.try_get::<String, _>(4)?, &what)?,
        profile: json(&r.try_get::<String, _>(5)?, &what)?,
        created_at: parse_ts(&r.try_get::<String, _>(6)?, &what)?,
        updated_at: parse_ts(&r.try_get::<String, _>(7)?, &what)?,
        version: r.try_get(8)?,
    })
}

/// Hides a password in a database URL for error messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}://{user}:***{}", &url[..s], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl FromStr for Backend {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sqlite" => Ok(Self::Sqlite),
            "postgres" => Ok(Self::Postgres),
            _ => Err(StoreError::UnsupportedUrl(s.to_owned())),
        }
    }
}

/// Parses a stored classification (for search hits).
pub(crate) fn classification(s: &str) -> Result<Classification, StoreError> {
    s.parse()
        .map_err(|e: agora_model::MetadataError| StoreError::Corrupt {
            what: "classification".into(),
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact("postgres://agora:secret@localhost/agora"),
            "postgres://agora:***@localhost/agora"
        );
        assert_eq!(super::redact("sqlite://x.db"), "sqlite://x.db");
    }
}
