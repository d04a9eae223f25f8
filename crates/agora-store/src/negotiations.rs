//! Sharing agreements: negotiations (each side keeps its own record, with every step in
//! `negotiation_events`), the outbox of messages owed to other members, and the log of
//! policy decisions.

use agora_model::{
    AccessRequest, Agreement, AgreementSignatures, AgreementTerms, AuditEntry, AuditKind, MemberId,
    Negotiation, NegotiationEvent, NegotiationRole, NegotiationState,
};
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{
    Store, StoreError, bump_catalog_version, insert_numbered, json, numbered, parse_ts, to_json, ts,
};

/// `SELECT` of a negotiation's columns, in the order [`negotiation_from_row`] reads them,
/// followed by the rest of the statement (a literal: queries are static strings).
macro_rules! select_negotiations {
    ($rest:literal) => {
        concat!(
            "SELECT id, role, consumer, state, request_json, offer_json, agreement_json, \
             owner_signature, consumer_signature, reason, created_at, updated_at, deadline, \
             owner_key, consumer_key FROM negotiations ",
            $rest
        )
    };
}

fn role(s: &str, what: &str) -> Result<NegotiationRole, StoreError> {
    match s {
        "consumer" => Ok(NegotiationRole::Consumer),
        "provider" => Ok(NegotiationRole::Provider),
        other => Err(StoreError::Corrupt {
            what: what.to_owned(),
            message: format!("unknown role {other:?}"),
        }),
    }
}

fn state(s: &str, what: &str) -> Result<NegotiationState, StoreError> {
    s.parse()
        .map_err(|e: agora_model::NegotiationError| StoreError::Corrupt {
            what: what.to_owned(),
            message: e.to_string(),
        })
}

fn negotiation_from_row(r: &AnyRow) -> Result<Negotiation, StoreError> {
    let id: String = r.try_get(0)?;
    let what = format!("negotiation {id}");
    let opt_json = |i: usize| -> Result<Option<String>, StoreError> { Ok(r.try_get(i)?) };
    let offer: Option<AgreementTerms> = match opt_json(5)? {
        Some(s) => Some(json(&s, &what)?),
        None => None,
    };
    let agreement: Option<Agreement> = match opt_json(6)? {
        Some(s) => Some(json(&s, &what)?),
        None => None,
    };
    let request: AccessRequest = json(&r.try_get::<String, _>(4)?, &what)?;
    Ok(Negotiation {
        role: role(&r.try_get::<String, _>(1)?, &what)?,
        consumer: MemberId::parse(&r.try_get::<String, _>(2)?).map_err(|e| {
            StoreError::Corrupt {
                what: what.clone(),
                message: e.to_string(),
            }
        })?,
        state: state(&r.try_get::<String, _>(3)?, &what)?,
        request,
        offer,
        agreement,
        signatures: AgreementSignatures {
            owner: r.try_get(7)?,
            consumer: r.try_get(8)?,
            owner_key: r.try_get(13)?,
            consumer_key: r.try_get(14)?,
        },
        reason: r.try_get(9)?,
        created_at: parse_ts(&r.try_get::<String, _>(10)?, &what)?,
        updated_at: parse_ts(&r.try_get::<String, _>(11)?, &what)?,
        deadline: parse_ts(&r.try_get::<String, _>(12)?, &what)?,
        id,
    })
}

/// A message owed to another member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    pub id: i64,
    pub peer: MemberId,
    pub kind: String,
    pub body_json: String,
    pub attempts: i64,
    pub last_error: Option<String>,
}

/// One logged policy decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDecisionRecord {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub principal: String,
    pub action: String,
    pub resource: String,
    /// `allow` or `deny`.
    pub decision: String,
    /// The ids of the policies that decided it.
    pub policies: Vec<String>,
    /// Why, in words.
    pub reasons: String,
    pub context_json: String,
}

impl PolicyDecisionRecord {
    /// The decision as what it meant for the request, in words: a denied automatic
    /// approval is not a refusal, the request went to a steward.
    pub fn outcome(&self) -> &'static str {
        match (self.action.as_str(), self.decision.as_str()) {
            ("request", "allow") => "request admitted",
            ("request", _) => "request refused",
            ("auto_approve", "allow") => "approved automatically",
            ("auto_approve", _) => "left to a steward",
            ("reidentify", "allow") => "re-identification done",
            (_, "allow") => "allowed",
            _ => "denied",
        }
    }
}

impl Store {
    /// Records a new negotiation and its first step.
    pub async fn insert_negotiation(
        &self,
        n: &Negotiation,
        event: &NegotiationEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let res = sqlx::query(
            "INSERT INTO negotiations (id, role, consumer, owner, product, purpose, state, \
             request_json, offer_json, agreement_json, owner_signature, consumer_signature, \
             reason, created_at, updated_at, deadline, owner_key, consumer_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
             $18)",
        )
        .bind(&n.id)
        .bind(n.role.as_str())
        .bind(n.consumer.as_str())
        .bind(n.request.owner.as_str())
        .bind(n.request.product.as_str())
        .bind(&n.request.purpose)
        .bind(n.state.as_str())
        .bind(to_json(&n.request))
        .bind(n.offer.as_ref().map(to_json))
        .bind(n.agreement.as_ref().map(to_json))
        .bind(n.signatures.owner.clone())
        .bind(n.signatures.consumer.clone())
        .bind(n.reason.clone())
        .bind(ts(n.created_at))
        .bind(ts(n.updated_at))
        .bind(ts(n.deadline))
        .bind(n.signatures.owner_key.clone())
        .bind(n.signatures.consumer_key.clone())
        .execute(&mut *tx)
        .await;
        match res {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(StoreError::NegotiationExists(n.id.clone()));
            }
            other => {
                other?;
            }
        }
        insert_event(&mut tx, n, 1, event).await?;
        tx.commit().await?;
        self.log_one(negotiation_entry(n, 1, event)).await
    }

    /// Moves a negotiation on: stores `n` as it is now, provided the stored record is still
    /// in state `from` (so two concurrent moves cannot both win), and appends the step.
    pub async fn advance_negotiation(
        &self,
        n: &Negotiation,
        from: NegotiationState,
        event: &NegotiationEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE negotiations SET state = $1, offer_json = $2, agreement_json = $3, \
             owner_signature = $4, consumer_signature = $5, reason = $6, updated_at = $7, \
             deadline = $8, owner_key = $12, consumer_key = $13, request_json = $14 \
             WHERE id = $9 AND role = $10 AND state = $11",
        )
        .bind(n.state.as_str())
        .bind(n.offer.as_ref().map(to_json))
        .bind(n.agreement.as_ref().map(to_json))
        .bind(n.signatures.owner.clone())
        .bind(n.signatures.consumer.clone())
        .bind(n.reason.clone())
        .bind(ts(n.updated_at))
        .bind(ts(n.deadline))
        .bind(&n.id)
        .bind(n.role.as_str())
        .bind(from.as_str())
        .bind(n.signatures.owner_key.clone())
        .bind(n.signatures.consumer_key.clone())
        .bind(to_json(&n.request))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if done == 0 {
            drop(tx);
            let now = self.negotiation(&n.id, n.role).await?;
            return Err(match now {
                None => StoreError::NegotiationNotFound(n.id.clone()),
                Some(now) => StoreError::NegotiationMoved {
                    id: n.id.clone(),
                    expected: from.to_string(),
                    actual: now.state.to_string(),
                },
            });
        }
        let seq: i64 = sqlx::query(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM negotiation_events \
             WHERE negotiation_id = $1 AND role = $2",
        )
        .bind(&n.id)
        .bind(n.role.as_str())
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        insert_event(&mut tx, n, seq, event).await?;
        // What other members' queries see depends on the agreements in force.
        if matches!(
            n.state,
            NegotiationState::Finalized | NegotiationState::Terminated
        ) {
            bump_catalog_version(&mut tx).await?;
        }
        tx.commit().await?;
        self.log_one(negotiation_entry(n, seq, event)).await
    }

    pub async fn negotiation(
        &self,
        id: &str,
        role: NegotiationRole,
    ) -> Result<Option<Negotiation>, StoreError> {
        let row = sqlx::query(select_negotiations!("WHERE id = $1 AND role = $2"))
            .bind(id)
            .bind(role.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(negotiation_from_row).transpose()
    }

    /// Negotiations newest first, optionally of one side or in one state.
    pub async fn negotiations(
        &self,
        role: Option<NegotiationRole>,
        state: Option<NegotiationState>,
        limit: u32,
    ) -> Result<Vec<Negotiation>, StoreError> {
        let rows = sqlx::query(select_negotiations!(
            "WHERE ($1 = '' OR role = $1) \
             AND ($2 = '' OR state = $2) ORDER BY created_at DESC, id LIMIT $3"
        ))
        .bind(role.map(|r| r.as_str()).unwrap_or(""))
        .bind(state.map(|s| s.as_str()).unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(negotiation_from_row).collect()
    }

    /// Unfinished negotiations whose deadline has passed.
    pub async fn negotiations_past_deadline(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<Negotiation>, StoreError> {
        let rows = sqlx::query(select_negotiations!(
            "WHERE state <> $1 AND state <> $2 \
             AND deadline < $3 ORDER BY deadline"
        ))
        .bind(NegotiationState::Finalized.as_str())
        .bind(NegotiationState::Terminated.as_str())
        .bind(ts(now))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(negotiation_from_row).collect()
    }

    /// The finalized agreements of this node's side `role` with `peer`, on one product or
    /// on all (expiry is checked by the caller, against its clock).
    pub async fn agreements_with(
        &self,
        role: NegotiationRole,
        peer: &MemberId,
        product: Option<&str>,
    ) -> Result<Vec<Negotiation>, StoreError> {
        let rows = sqlx::query(select_negotiations!(
            "WHERE role = $1 AND (CASE WHEN $1 = 'provider' THEN consumer ELSE owner END) = $2 \
             AND state = $3 AND ($4 = '' OR product = $4) ORDER BY created_at, id"
        ))
        .bind(role.as_str())
        .bind(peer.as_str())
        .bind(NegotiationState::Finalized.as_str())
        .bind(product.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(negotiation_from_row).collect()
    }

    /// Every finalized agreement of this node's side `role`.
    pub async fn agreements_in_force(
        &self,
        role: NegotiationRole,
    ) -> Result<Vec<Negotiation>, StoreError> {
        let rows = sqlx::query(select_negotiations!(
            "WHERE role = $1 AND state = $2 ORDER BY created_at, id"
        ))
        .bind(role.as_str())
        .bind(NegotiationState::Finalized.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(negotiation_from_row).collect()
    }

    /// A negotiation's steps, oldest first.
    pub async fn negotiation_events(
        &self,
        id: &str,
        role: NegotiationRole,
    ) -> Result<Vec<NegotiationEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, state, actor, note FROM negotiation_events \
             WHERE negotiation_id = $1 AND role = $2 ORDER BY seq",
        )
        .bind(id)
        .bind(role.as_str())
        .fetch_all(&self.pool)
        .await?;
        let what = format!("negotiation {id}");
        rows.iter()
            .map(|r| {
                Ok(NegotiationEvent {
                    at: parse_ts(&r.try_get::<String, _>(0)?, &what)?,
                    state: state(&r.try_get::<String, _>(1)?, &what)?,
                    actor: MemberId::parse(&r.try_get::<String, _>(2)?).map_err(|e| {
                        StoreError::Corrupt {
                            what: what.clone(),
                            message: e.to_string(),
                        }
                    })?,
                    note: r.try_get(3)?,
                })
            })
            .collect()
    }

    // ---- outbox ----

    /// Queues a message for `peer`, to be sent now and retried until delivered.
    pub async fn enqueue_message(
        &self,
        peer: &MemberId,
        kind: &str,
        body_json: &str,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        insert_numbered("the outbox", || async {
            numbered(
                sqlx::query(
                    "INSERT INTO outbox (id, peer, kind, body_json, created_at, attempts, \
                     next_attempt_at) SELECT COALESCE(MAX(id), 0) + 1, $1, $2, $3, $4, 0, $4 \
                     FROM outbox RETURNING id",
                )
                .bind(peer.as_str())
                .bind(kind)
                .bind(body_json)
                .bind(ts(now))
                .fetch_one(&self.pool)
                .await,
            )
        })
        .await
    }

    /// Messages due for (another) attempt, oldest first.
    pub async fn due_messages(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, peer, kind, body_json, attempts, last_error FROM outbox \
             WHERE next_attempt_at <= $1 ORDER BY id LIMIT $2",
        )
        .bind(ts(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let id: i64 = r.try_get(0)?;
                Ok(OutboxMessage {
                    id,
                    peer: MemberId::parse(&r.try_get::<String, _>(1)?).map_err(|e| {
                        StoreError::Corrupt {
                            what: format!("outbox message {id}"),
                            message: e.to_string(),
                        }
                    })?,
                    kind: r.try_get(2)?,
                    body_json: r.try_get(3)?,
                    attempts: r.try_get(4)?,
                    last_error: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// Every undelivered message, for status displays.
    pub async fn pending_messages(&self) -> Result<Vec<OutboxMessage>, StoreError> {
        use chrono::TimeZone;
        let end_of_time = Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap();
        self.due_messages(end_of_time, u32::MAX).await
    }

    pub async fn message_delivered(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM outbox WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn message_failed(
        &self,
        id: i64,
        error: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2 \
             WHERE id = $3",
        )
        .bind(error)
        .bind(ts(next_attempt_at))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // ---- policy decisions ----

    /// Appends a policy decision to the log and returns its sequence number.
    pub async fn log_policy_decision(&self, d: &PolicyDecisionRecord) -> Result<i64, StoreError> {
        let seq = insert_numbered("the policy decision log", || async {
            numbered(
                sqlx::query(
                    "INSERT INTO policy_decisions (seq, at, principal, action, resource, \
                     decision, policies_json, reasons, context_json) \
                     SELECT COALESCE(MAX(seq), 0) + 1, $1, $2, $3, $4, $5, $6, $7, $8 \
                     FROM policy_decisions RETURNING seq",
                )
                .bind(ts(d.at))
                .bind(&d.principal)
                .bind(&d.action)
                .bind(&d.resource)
                .bind(&d.decision)
                .bind(to_json(&d.policies))
                .bind(&d.reasons)
                .bind(&d.context_json)
                .fetch_one(&self.pool)
                .await,
            )
        })
        .await?;
        self.log_one(decision_entry(seq, d)).await?;
        Ok(seq)
    }

    /// The newest policy decisions first.
    pub async fn policy_decisions(
        &self,
        limit: u32,
    ) -> Result<Vec<PolicyDecisionRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at, principal, action, resource, decision, policies_json, reasons, \
             context_json FROM policy_decisions ORDER BY seq DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let seq: i64 = r.try_get(0)?;
                let what = format!("policy decision {seq}");
                Ok(PolicyDecisionRecord {
                    seq,
                    at: parse_ts(&r.try_get::<String, _>(1)?, &what)?,
                    principal: r.try_get(2)?,
                    action: r.try_get(3)?,
                    resource: r.try_get(4)?,
                    decision: r.try_get(5)?,
                    policies: json(&r.try_get::<String, _>(6)?, &what)?,
                    reasons: r.try_get(7)?,
                    context_json: r.try_get(8)?,
                })
            })
            .collect()
    }
}

/// The transparency-log entry of a negotiation step: a signature when the step signs
/// the agreement, a revocation when an agreement in force ends, a step otherwise.
fn negotiation_entry(n: &Negotiation, seq: i64, event: &NegotiationEvent) -> AuditEntry {
    let signed = matches!(
        event.state,
        NegotiationState::Agreed | NegotiationState::Verified
    );
    let revoked = event.state == NegotiationState::Terminated
        && n.signatures.owner.is_some()
        && n.signatures.consumer.is_some();
    let kind = if revoked {
        AuditKind::Revocation
    } else if signed {
        AuditKind::Signature
    } else {
        AuditKind::Negotiation
    };
    let peer = match n.role {
        agora_model::NegotiationRole::Provider => n.consumer.as_str(),
        agora_model::NegotiationRole::Consumer => n.request.owner.as_str(),
    };
    let mut e = AuditEntry::new(
        kind,
        format!("negotiation:{}:{}:{seq}", n.id, n.role.as_str()),
        event.actor.as_str(),
    )
    .peer(peer)
    .product(n.request.product.as_str())
    .purpose(n.request.purpose.clone())
    .outcome(event.state.as_str())
    .with("legal_basis", n.request.legal_basis.clone())
    .with("note", event.note.clone());
    e.at = event.at;
    if let Some(a) = &n.agreement {
        e = e
            .agreement(a.id.clone())
            .with("valid_until", ts(a.valid_until));
    }
    if signed || revoked {
        for (k, v) in [
            ("owner_signature", &n.signatures.owner),
            ("consumer_signature", &n.signatures.consumer),
        ] {
            if let Some(v) = v {
                e = e.with(k, v.clone());
            }
        }
    }
    e
}

/// The transparency-log entry of a policy decision.
fn decision_entry(seq: i64, d: &PolicyDecisionRecord) -> AuditEntry {
    let mut e = AuditEntry::new(
        AuditKind::Decision,
        format!("decision:{seq}"),
        d.principal.clone(),
    )
    .outcome(d.outcome())
    .with("action", d.action.clone())
    .with("resource", d.resource.clone())
    .with("decision", d.decision.clone())
    .with("policies", d.policies.clone())
    .with("reasons", d.reasons.clone());
    e.at = d.at;
    // The resource is `owner/product`; the context names the negotiation and purpose.
    if let Some((_, product)) = d.resource.split_once('/') {
        e = e.product(product);
    }
    if let Ok(c) = serde_json::from_str::<serde_json::Value>(&d.context_json) {
        let purpose = c
            .get("purpose")
            .or_else(|| c.get("facts").and_then(|f| f.get("purpose")));
        if let Some(p) = purpose.and_then(|p| p.as_str()) {
            e = e.purpose(p);
        }
        if let Some(n) = c.get("negotiation").and_then(|n| n.as_str()) {
            e = e.with("negotiation", n);
        }
    }
    e
}

async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    n: &Negotiation,
    seq: i64,
    event: &NegotiationEvent,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO negotiation_events (negotiation_id, role, seq, at, state, actor, note) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&n.id)
    .bind(n.role.as_str())
    .bind(seq)
    .bind(ts(event.at))
    .bind(event.state.as_str())
    .bind(event.actor.as_str())
    .bind(&event.note)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
