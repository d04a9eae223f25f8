//! The access log of the node's own people and tools: every query of theirs that reads
//! data products — through the API, the web pages, the command line or Flight SQL — is
//! recorded before its first row is returned (who, when, through what, which products and
//! agreements, the SQL's SHA-256) and completed with its outcome and the rows returned
//! once the answer ends. A query refused for want of an agreement or a right is recorded
//! too. Queries that read no product (`SELECT 1`, the information schema) are not data
//! accesses and are not recorded. Other members' queries are in the exchange log.

use agora_engine::{QueryResult, StreamEnd};
use agora_model::Agreement;
use agora_store::{AccessRecord, AccessStart};

use crate::{ErrorKind, Node, NodeError};

/// Through what an access came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Api,
    Web,
    Cli,
    Flight,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Web => "web",
            Self::Cli => "cli",
            Self::Flight => "flight",
        }
    }
}

/// Who runs a query, as the access log names them.
#[derive(Debug, Clone)]
pub struct Accessor {
    /// `token:ID (LABEL)`, `user:NAME` or `cli:OS-USER`.
    pub principal: String,
    pub channel: Channel,
}

impl Accessor {
    pub fn token(token: &agora_store::TokenInfo) -> Self {
        Self {
            principal: format!("token:{} ({})", token.id, token.label),
            channel: Channel::Api,
        }
    }

    pub fn web_user(username: &str) -> Self {
        Self {
            principal: format!("user:{username}"),
            channel: Channel::Web,
        }
    }

    /// The operating-system user running the command line.
    pub fn command_line() -> Self {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into());
        Self {
            principal: format!("cli:{user}"),
            channel: Channel::Cli,
        }
    }
}

/// A query's answer with what it read: the products as named in SQL and the agreements
/// other members' products were read under.
pub struct LoggedQuery {
    pub result: QueryResult,
    pub products: Vec<String>,
    pub agreements: Vec<(String, Agreement)>,
}

impl LoggedQuery {
    /// The agreements' ids, comma-separated.
    pub fn agreement_ids(&self) -> String {
        let ids: Vec<&str> = self.agreements.iter().map(|(_, a)| a.id.as_str()).collect();
        ids.join(", ")
    }

    /// What the disclosure control of aggregate agreements did to the answer, in words.
    pub fn disclosure_notices(&self) -> Vec<String> {
        self.agreements
            .iter()
            .filter_map(|(_, a)| a.disclosure_notice())
            .collect()
    }
}

impl Node {
    /// Plans `sql` for `who` (over the catalog as of `caller`, when given) and records the
    /// access: refused ones at once, answered ones before the first row and again when the
    /// answer ends.
    pub async fn query_logged(
        &self,
        who: &Accessor,
        caller: Option<&crate::Caller>,
        sql: &str,
    ) -> Result<LoggedQuery, NodeError> {
        let planned = match caller {
            Some(c) => self.query_as(c, sql).await,
            None => self.query(sql).await,
        };
        let digest = agora_trust::digest_hex(sql.as_bytes());
        let result = match planned {
            Ok(r) => r,
            Err(e) => {
                if matches!(e.kind(), ErrorKind::AccessDenied | ErrorKind::Forbidden) {
                    let start = AccessStart {
                        principal: who.principal.clone(),
                        channel: who.channel.as_str().into(),
                        sql_digest: digest,
                        outcome: Some(format!("refused: {e}")),
                        ..Default::default()
                    };
                    if let Err(log) = self.store().begin_access(&start).await {
                        tracing::error!(error = %log, "cannot record a refused access");
                    }
                }
                return Err(e);
            }
        };
        let products: Vec<String> = result
            .tables
            .iter()
            .map(|(member, table)| match member {
                Some(m) => format!("\"{m}\".{table}"),
                None => table.clone(),
            })
            .collect();
        let agreements = self.agreements_read(&result.tables).await?;
        if products.is_empty() {
            return Ok(LoggedQuery {
                result,
                products,
                agreements,
            });
        }
        let ids: Vec<&str> = agreements.iter().map(|(_, a)| a.id.as_str()).collect();
        let mut purposes: Vec<&str> = agreements.iter().map(|(_, a)| a.purpose.as_str()).collect();
        purposes.sort_unstable();
        purposes.dedup();
        let start = AccessStart {
            principal: who.principal.clone(),
            channel: who.channel.as_str().into(),
            products: products.join(", "),
            agreements: ids.join(", "),
            sql_digest: digest,
            outcome: None,
            purposes: purposes.join(", "),
        };
        let id = self.store().begin_access(&start).await?;
        let node = self.clone();
        let result = result.observe(Box::new(move |end| node.finish_access(id, start, end)));
        Ok(LoggedQuery {
            result,
            products,
            agreements,
        })
    }

    fn finish_access(&self, id: String, start: AccessStart, end: StreamEnd) {
        let (outcome, rows) = match end {
            StreamEnd::Complete { rows } => ("answered".to_owned(), rows),
            StreamEnd::Failed { rows, error } => (format!("failed: {error}"), rows),
            StreamEnd::Dropped { rows } => ("stopped by the client".to_owned(), rows),
        };
        let store = self.store().clone();
        let write = async move {
            if let Err(e) = store.finish_access(&id, &start, &outcome, rows).await {
                tracing::error!(access = %id, error = %e, "cannot complete an access record");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(_) => {
                self.inner.access_writes.spawn(write);
            }
            Err(_) => {
                tracing::error!("an access ended outside the runtime; its record stays running")
            }
        }
    }

    /// Waits until every access record of answers that ended is complete (the command
    /// line calls it before it exits).
    pub async fn flush_access_log(&self) {
        let tracker = &self.inner.access_writes;
        tracker.close();
        tracker.wait().await;
        tracker.reopen();
    }

    /// The most recent accesses by this node's own people and tools, newest first.
    pub async fn accesses(&self, limit: u32) -> Result<Vec<AccessRecord>, NodeError> {
        Ok(self.store().accesses(limit).await?)
    }
}
