//! The exchange log's writer: one task per store appends and completes exchange records,
//! in groups (and writes the access log's records, grouped the same way).
//!
//! Every node-to-node call writes two records per side (the pending record, then its
//! completion), so on a busy node the log is written far more often than anything else.
//! Through the pool each of those writes costs a checkout, a statement, a commit and the
//! pool's liveness check of the connection on its return. The journal instead keeps a
//! connection of its own (for a file or PostgreSQL store; an in-memory store has only the
//! pool's one connection) and writes whatever has queued up while the previous group was
//! written as one statement per kind: a multi-row `INSERT … RETURNING` for new records and
//! a multi-row `UPDATE … FROM (VALUES …)` for completions.
//!
//! Nothing about durability changes: a caller's future resolves only once the statement
//! holding its record has committed, and each statement is atomic on its own. A group
//! that meets a unique conflict (a replayed nonce, or a concurrent writer taking the same
//! sequence number) is written again one record at a time, so a replay fails only its own
//! request.

use std::sync::{Mutex, OnceLock};

use sqlx::AnyConnection;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Connection, Row};
use tokio::sync::{mpsc, oneshot};

use agora_model::{ExchangeEnd, ExchangeStart};

use crate::exchange::PENDING;
use crate::{StoreError, ts};

/// Records per statement, at most: groups are split into sizes 32, 16, … 1, so each
/// connection prepares at most six statements of each kind.
const MAX_ROWS: usize = 32;
/// Operations taken into one group, at most: transparency-log entries share one
/// transaction, so a larger group costs little more than a small one.
const MAX_GROUP: usize = 4096;
/// Sequence-number conflicts tolerated before giving up on one record.
const INSERT_RETRIES: usize = 16;

/// Where the journal's connection comes from.
#[derive(Clone)]
pub(crate) enum Source {
    /// An in-memory store: its pool's only connection holds the database.
    Pool(AnyPool),
    /// A file or server: a connection of the journal's own, opened from `url` (an SQLite
    /// one set up as the pool's are, by `sqlite_setup`) and opened again after a failure.
    Own { url: String, pool: AnyPool },
}

pub(crate) struct Journal {
    source: Source,
    tx: Mutex<mpsc::UnboundedSender<Op>>,
}

pub(crate) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum Op {
    Append {
        start: ExchangeStart,
        end: ExchangeEnd,
        reply: Reply<(i64, i64)>,
    },
    Complete {
        seq: i64,
        certificate: String,
        end: ExchangeEnd,
        reply: Reply<()>,
    },
    /// A write to the access log (`access.rs`), grouped in one transaction with the
    /// others that queued meanwhile.
    Access(crate::access::AccessOp),
    /// Entries for the transparency log (`tlog.rs`), appended in one transaction with the
    /// others that queued meanwhile.
    Log(crate::tlog::LogOp),
    /// Answered once everything sent before is written; with `close`, the journal's own
    /// connection is closed then too.
    Flush {
        close: bool,
        reply: oneshot::Sender<()>,
    },
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Journal")
    }
}

fn stopped() -> StoreError {
    StoreError::ExchangeLog(
        "the exchange log writer stopped before the record was written; try again".into(),
    )
}

impl Journal {
    /// Starts the writer on the current tokio runtime.
    pub(crate) fn start(source: Source) -> Self {
        let tx = spawn(source.clone());
        Self {
            source,
            tx: Mutex::new(tx),
        }
    }

    fn send(&self, op: Op) -> Result<(), StoreError> {
        let mut tx = self.tx.lock().expect("journal lock");
        match tx.send(op) {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendError(op)) => {
                // The writer's runtime has ended (the store is used from another one):
                // start a writer on this one.
                if tokio::runtime::Handle::try_current().is_err() {
                    return Err(stopped());
                }
                *tx = spawn(self.source.clone());
                tx.send(op).map_err(|_| stopped())
            }
        }
    }

    /// Appends a record; resolves with its sequence number and the catalog version once
    /// it is committed.
    pub(crate) async fn append(
        &self,
        start: ExchangeStart,
        end: ExchangeEnd,
    ) -> Result<(i64, i64), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.send(Op::Append { start, end, reply })?;
        rx.await.map_err(|_| stopped())?
    }

    /// Completes a pending record (a record no longer pending is left as it is).
    pub(crate) async fn complete(
        &self,
        seq: i64,
        certificate: &str,
        end: &ExchangeEnd,
    ) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.send(Op::Complete {
            seq,
            certificate: certificate.to_owned(),
            end: end.clone(),
            reply,
        })?;
        rx.await.map_err(|_| stopped())?
    }

    /// Writes an access-log record with the others queued meanwhile; resolves once it is
    /// committed.
    pub(crate) async fn access(
        &self,
        make: impl FnOnce(Reply<()>) -> crate::access::AccessOp,
    ) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.send(Op::Access(make(reply)))?;
        rx.await.map_err(|_| stopped())?
    }

    /// Appends entries to the transparency log with the others queued meanwhile;
    /// resolves with the index of the first once they are committed.
    pub(crate) async fn log(&self, entries: Vec<crate::tlog::Pending>) -> Result<u64, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.send(Op::Log(crate::tlog::LogOp { entries, reply }))?;
        rx.await.map_err(|_| stopped())?
    }

    /// Waits until everything sent before has been written, then closes the journal's
    /// own connection (a later write would open it again, unless the store is closed).
    pub(crate) async fn close(&self) {
        let (reply, rx) = oneshot::channel();
        if self.send(Op::Flush { close: true, reply }).is_ok() {
            let _ = rx.await;
        }
    }
}

fn spawn(source: Source) -> mpsc::UnboundedSender<Op> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(source, rx));
    tx
}

async fn run(source: Source, mut rx: mpsc::UnboundedReceiver<Op>) {
    let mut own: Option<AnyConnection> = None;
    let mut edge = crate::tlog::Edge::default();
    let mut ops = Vec::new();
    while rx.recv_many(&mut ops, MAX_GROUP).await > 0 {
        let (flushes, batch): (Vec<Op>, Vec<Op>) = std::mem::take(&mut ops)
            .into_iter()
            .partition(|op| matches!(op, Op::Flush { .. }));
        if !batch.is_empty() {
            tracing::trace!(records = batch.len(), "exchange log group");
            write_group(&source, &mut own, &mut edge, batch).await;
        }
        for op in flushes {
            if let Op::Flush { close, reply } = op {
                if close && let Some(c) = own.take() {
                    let _ = c.close().await;
                }
                let _ = reply.send(());
            }
        }
    }
    if let Some(c) = own {
        let _ = c.close().await;
    }
}

async fn write_group(
    source: &Source,
    own: &mut Option<AnyConnection>,
    edge: &mut crate::tlog::Edge,
    batch: Vec<Op>,
) {
    match source {
        Source::Pool(pool) => match pool.acquire().await {
            Ok(mut conn) => {
                write(&mut conn, edge, batch).await;
            }
            Err(e) => fail(batch, &e),
        },
        Source::Own { url, pool } => {
            if pool.is_closed() {
                return fail(batch, &sqlx::Error::PoolClosed);
            }
            let conn = match own {
                Some(c) => c,
                None => match connect(url).await {
                    Ok(c) => own.insert(c),
                    Err(e) => return fail(batch, &e),
                },
            };
            if write(conn, edge, batch).await {
                // The connection failed: the next group opens a new one.
                *own = None;
            }
        }
    }
}

async fn connect(url: &str) -> Result<AnyConnection, sqlx::Error> {
    let mut conn = AnyConnection::connect(url).await?;
    if url.starts_with("sqlite:") {
        crate::sqlite_setup(&mut conn, false).await?;
    }
    Ok(conn)
}

/// Answers every operation of a group that could not be written.
fn fail(batch: Vec<Op>, e: &sqlx::Error) {
    for op in batch {
        let err = || StoreError::ExchangeLog(e.to_string());
        match op {
            Op::Append { reply, .. } => {
                let _ = reply.send(Err(err()));
            }
            Op::Complete { reply, .. } => {
                let _ = reply.send(Err(err()));
            }
            Op::Access(a) => a.answer(Err(err())),
            Op::Log(l) => {
                let _ = l.reply.send(Err(err()));
            }
            Op::Flush { reply, .. } => {
                let _ = reply.send(());
            }
        }
    }
}

/// Whether an error means the connection itself is unusable.
pub(crate) fn broken(e: &sqlx::Error) -> bool {
    !matches!(
        e,
        sqlx::Error::Database(_) | sqlx::Error::RowNotFound | sqlx::Error::ColumnDecode { .. }
    )
}

/// Splits `items` into runs of 32, 16, 8, 4, 2 and 1.
fn runs<T>(mut items: Vec<T>) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    while !items.is_empty() {
        let n = items.len().min(MAX_ROWS);
        let size = 1 << (usize::BITS - 1 - n.leading_zeros());
        let rest = items.split_off(size);
        out.push(std::mem::replace(&mut items, rest));
    }
    out
}

/// A caller's reply held back until the group's transparency-log entries are written:
/// nobody is told a record is written before its entry is durable.
struct Held(Box<dyn Answer>);

/// Answers a caller, told why the log entry failed, if it did.
trait Answer: FnOnce(Option<&str>) + Send {}
impl<F: FnOnce(Option<&str>) + Send> Answer for F {}

/// An intermediate reply for `reply`: the writing code answers it, and [`settle`] turns
/// its answer into a [`Held`] reply (with the log entry it calls for, if it succeeded).
fn intercept<T: Send + 'static>(reply: Reply<T>) -> (Reply<T>, Intercepted<T>) {
    let (tx, rx) = oneshot::channel();
    (tx, Intercepted { reply, rx })
}

struct Intercepted<T> {
    reply: Reply<T>,
    rx: oneshot::Receiver<Result<T, StoreError>>,
}

impl<T: Send + 'static> Intercepted<T> {
    /// The result the writing code gave, and the caller's reply held.
    fn settle(mut self) -> (Result<T, ()>, Held)
    where
        T: Clone,
    {
        let result = self.rx.try_recv().unwrap_or_else(|_| Err(stopped()));
        let seen = result.as_ref().map(Clone::clone).map_err(|_| ());
        let reply = self.reply;
        let held = Held(Box::new(move |log_failure| {
            let _ = reply.send(match (result, log_failure) {
                (Ok(_), Some(why)) => Err(StoreError::TransparencyLog(format!(
                    "the record was written but not its entry in the transparency log: {why}"
                ))),
                (r, _) => r,
            });
        }));
        (seen, held)
    }
}

/// Writes a group; true when the connection broke on the way. The records' entries in
/// the transparency log are appended after them, in the same group, before any caller is
/// answered.
async fn write(conn: &mut AnyConnection, edge: &mut crate::tlog::Edge, batch: Vec<Op>) -> bool {
    let mut appends = Vec::new();
    let mut completes = Vec::new();
    let mut accesses = Vec::new();
    let mut logs = Vec::new();
    let mut held: Vec<Held> = Vec::new();
    let mut entries: Vec<(agora_model::AuditEntry, Vec<u8>)> = Vec::new();
    let mut waiting_appends = Vec::new();
    let mut waiting_completes = Vec::new();
    let mut waiting_accesses = Vec::new();
    for op in batch {
        match op {
            Op::Access(mut a) => {
                let (tx, w) = intercept(a.swap_reply(oneshot::channel().0));
                a.swap_reply(tx);
                waiting_accesses.push((a.entry(), w));
                accesses.push(a);
            }
            Op::Log(l) => logs.push(l),
            Op::Append { start, end, reply } => {
                let (tx, w) = intercept(reply);
                waiting_appends.push((start.clone(), end.clone(), w));
                appends.push((start, end, tx));
            }
            Op::Complete {
                seq,
                certificate,
                end,
                reply,
            } => {
                let (tx, w) = intercept(reply);
                waiting_completes.push((seq, end.clone(), w));
                completes.push((seq, certificate, end, tx));
            }
            // Answered by the caller, after the group.
            Op::Flush { .. } => {}
        }
    }
    let mut is_broken = false;
    for run in runs(appends) {
        is_broken |= append_run(conn, run).await;
    }
    let mut completed = std::collections::HashMap::new();
    for run in runs(completes) {
        let (b, done) = complete_run(conn, run).await;
        is_broken |= b;
        completed.extend(done);
    }
    if !accesses.is_empty() {
        is_broken |= crate::access::write_group(conn, accesses).await;
    }
    for (start, end, w) in waiting_appends {
        let (seen, h) = w.settle();
        if let Ok((seq, _)) = seen {
            entries.push((crate::tlog::exchange_entry(seq, &start, &end), Vec::new()));
        }
        held.push(h);
    }
    for (seq, end, w) in waiting_completes {
        let (seen, h) = w.settle();
        // Only a record that was still pending is completed (and logged).
        if let (Ok(()), Some((direction, peer))) = (seen, completed.get(&seq)) {
            entries.push((
                crate::tlog::completion_entry(seq, direction, peer, &end),
                end.context.subject_tags.clone(),
            ));
        }
        held.push(h);
    }
    for (entry, w) in waiting_accesses {
        let (seen, h) = w.settle();
        if seen.is_ok() {
            entries.push((entry, Vec::new()));
        }
        held.push(h);
    }
    let failure = if is_broken {
        Some(stopped().to_string())
    } else {
        let (b, failure) = crate::tlog::write_with(conn, edge, entries, logs).await;
        is_broken |= b;
        failure
    };
    if failure.is_some() && !held.is_empty() {
        tracing::error!(
            error = failure.as_deref().unwrap_or_default(),
            records = held.len(),
            "records written without their transparency-log entries"
        );
    }
    for h in held {
        (h.0)(failure.as_deref());
    }
    is_broken
}

type AppendOp = (ExchangeStart, ExchangeEnd, Reply<(i64, i64)>);

async fn append_run(conn: &mut AnyConnection, run: Vec<AppendOp>) -> bool {
    if run.len() > 1 {
        let rows: Vec<_> = run.iter().map(|(s, e, _)| (s, e)).collect();
        match insert(conn, &rows).await {
            Ok(numbers) => {
                for ((_, _, reply), n) in run.into_iter().zip(numbers) {
                    let _ = reply.send(Ok(n));
                }
                return false;
            }
            // A replay or a concurrent writer: one record at a time tells which.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {}
            Err(e) => {
                let b = broken(&e);
                fail(
                    run.into_iter()
                        .map(|(start, end, reply)| Op::Append { start, end, reply })
                        .collect(),
                    &e,
                );
                return b;
            }
        }
    }
    let mut is_broken = false;
    for (start, end, reply) in run {
        let res = append_one(conn, &start, &end).await;
        if let Err(StoreError::Query(e)) = &res {
            is_broken |= broken(e);
        }
        let _ = reply.send(res);
    }
    is_broken
}

/// Appends one record, numbering it again after a concurrent writer took its number; a
/// nonce already recorded for the same peer and direction is a replay.
async fn append_one(
    conn: &mut AnyConnection,
    start: &ExchangeStart,
    end: &ExchangeEnd,
) -> Result<(i64, i64), StoreError> {
    for _ in 0..INSERT_RETRIES {
        match insert(conn, &[(start, end)]).await {
            Ok(n) => return Ok(n[0]),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                let seen = sqlx::query(
                    "SELECT 1 FROM exchange_log WHERE direction = $1 AND peer = $2 AND nonce = $3",
                )
                .bind(start.direction.as_str())
                .bind(start.peer.as_str())
                .bind(&start.nonce)
                .fetch_optional(&mut *conn)
                .await?
                .is_some();
                if seen {
                    return Err(StoreError::Replay {
                        peer: start.peer.to_string(),
                        nonce: start.nonce.clone(),
                    });
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Busy("the exchange log".into()))
}

/// Which prepared statement of a kind: 0 for one row, 1 for two, … 5 for 32.
fn slot(rows: usize) -> usize {
    debug_assert!(rows.is_power_of_two() && rows <= MAX_ROWS);
    rows.trailing_zeros() as usize
}

/// `VALUES ($1, …, $w), ($w+1, …), …` for `rows` rows of `width` parameters.
pub(crate) fn values(rows: usize, width: usize) -> String {
    (0..rows)
        .map(|r| {
            let ps: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            format!("({})", ps.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

const INSERT_WIDTH: usize = 15;

fn insert_sql(rows: usize) -> &'static str {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    let all = SQL.get_or_init(|| {
        (0..=slot(MAX_ROWS))
            .map(|i| {
                // Row k (1, 2, …) of the group is numbered k past the largest number, so
                // the numbers keep the group's order.
                format!(
                    "INSERT INTO exchange_log (seq, direction, peer, peer_certificate, operation, \
                     nonce, requested_at, request_digest, request_signature, response_digest, \
                     response_signature, outcome, duration_ms, rows_returned, bytes_returned) \
                     SELECT m.n + v.column1, v.column2, v.column3, v.column4, v.column5, \
                     v.column6, v.column7, v.column8, v.column9, v.column10, v.column11, \
                     v.column12, v.column13, v.column14, v.column15 \
                     FROM (SELECT COALESCE(MAX(seq), 0) AS n FROM exchange_log) AS m, \
                     (VALUES {}) AS v \
                     RETURNING seq, (SELECT catalog_version FROM node WHERE id = 1)",
                    values(1 << i, INSERT_WIDTH)
                )
            })
            .collect()
    });
    &all[slot(rows)]
}

/// Inserts records numbered in order; their numbers and the catalog version, in order.
async fn insert(
    conn: &mut AnyConnection,
    rows: &[(&ExchangeStart, &ExchangeEnd)],
) -> Result<Vec<(i64, i64)>, sqlx::Error> {
    let mut q = sqlx::query(insert_sql(rows.len()));
    for (k, (start, end)) in rows.iter().enumerate() {
        q = q
            .bind(k as i64 + 1)
            .bind(start.direction.as_str())
            .bind(start.peer.as_str())
            .bind(&start.peer_certificate)
            .bind(&start.operation)
            .bind(&start.nonce)
            .bind(ts(start.requested_at))
            .bind(&start.request_digest)
            .bind(&start.request_signature)
            .bind(&end.response_digest)
            .bind(&end.response_signature)
            .bind(&end.outcome)
            .bind(end.duration_ms)
            .bind(end.rows)
            .bind(end.bytes);
    }
    let returned: Vec<AnyRow> = q.fetch_all(&mut *conn).await?;
    let mut numbers = returned
        .iter()
        .map(|r| {
            Ok((
                r.try_get::<i64, _>(0)?,
                r.try_get::<Option<i64>, _>(1)?.unwrap_or(0),
            ))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    if numbers.len() != rows.len() {
        return Err(sqlx::Error::Protocol(format!(
            "{} exchange records inserted, {} numbers returned",
            rows.len(),
            numbers.len()
        )));
    }
    // RETURNING gives no order; the numbers follow the rows'.
    numbers.sort_unstable();
    Ok(numbers)
}

const COMPLETE_WIDTH: usize = 8;

fn complete_sql(rows: usize) -> &'static str {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    let all = SQL.get_or_init(|| {
        (0..=slot(MAX_ROWS))
            .map(|i| {
                let n = 1 << i;
                format!(
                    "UPDATE exchange_log SET response_digest = v.column2, \
                     response_signature = v.column3, outcome = v.column4, \
                     duration_ms = v.column5, rows_returned = v.column6, \
                     bytes_returned = v.column7, peer_certificate = CASE WHEN v.column8 = '' \
                     THEN exchange_log.peer_certificate ELSE v.column8 END \
                     FROM (VALUES {}) AS v \
                     WHERE exchange_log.seq = v.column1 AND exchange_log.outcome = ${} \
                     RETURNING exchange_log.seq, exchange_log.direction, exchange_log.peer",
                    values(n, COMPLETE_WIDTH),
                    n * COMPLETE_WIDTH + 1
                )
            })
            .collect()
    });
    &all[slot(rows)]
}

type CompleteOp = (i64, String, ExchangeEnd, Reply<()>);

/// The records a run completed: sequence number → (direction, peer).
type Completed = Vec<(i64, (String, String))>;

async fn complete_run(conn: &mut AnyConnection, run: Vec<CompleteOp>) -> (bool, Completed) {
    let mut q = sqlx::query(complete_sql(run.len()));
    for (seq, certificate, end, _) in &run {
        q = q
            .bind(*seq)
            .bind(&end.response_digest)
            .bind(&end.response_signature)
            .bind(&end.outcome)
            .bind(end.duration_ms)
            .bind(end.rows)
            .bind(end.bytes)
            .bind(certificate);
    }
    match q.bind(PENDING).fetch_all(&mut *conn).await {
        Ok(rows) => {
            for (.., reply) in run {
                let _ = reply.send(Ok(()));
            }
            let done = rows
                .iter()
                .filter_map(|r| {
                    Some((
                        r.try_get::<i64, _>(0).ok()?,
                        (
                            r.try_get::<String, _>(1).ok()?,
                            r.try_get::<String, _>(2).ok()?,
                        ),
                    ))
                })
                .collect();
            (false, done)
        }
        Err(e) if run.len() == 1 => {
            let b = broken(&e);
            let (.., reply) = run.into_iter().next().expect("one");
            let _ = reply.send(Err(e.into()));
            (b, Vec::new())
        }
        Err(e) => {
            let b = broken(&e);
            fail(
                run.into_iter()
                    .map(|(seq, certificate, end, reply)| Op::Complete {
                        seq,
                        certificate,
                        end,
                        reply,
                    })
                    .collect(),
                &e,
            );
            (b, Vec::new())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_split_into_powers_of_two() {
        let sizes = |n: usize| {
            runs((0..n).collect())
                .iter()
                .map(Vec::len)
                .collect::<Vec<_>>()
        };
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), vec![1]);
        assert_eq!(sizes(13), vec![8, 4, 1]);
        assert_eq!(sizes(32), vec![32]);
        assert_eq!(sizes(70), vec![32, 32, 4, 2]);
        // Order is kept.
        let flat: Vec<usize> = runs((0..70).collect()).into_iter().flatten().collect();
        assert_eq!(flat, (0..70).collect::<Vec<_>>());
    }

    #[test]
    fn statements_number_their_parameters_in_order() {
        assert_eq!(values(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert!(complete_sql(2).contains("exchange_log.outcome = $17 RETURNING"));
        assert!(insert_sql(4).contains("$60)"));
    }
}
