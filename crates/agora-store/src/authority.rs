//! The ecosystem authority's records: admitted members, one-time enrolment tokens, issued
//! certificates, revocations, and the trust list's sequence number.

use agora_model::{CertificateKind, Endpoints, MemberId};
use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::{Store, StoreError, json, now, parse_ts, to_json, ts};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorityRecord {
    pub ecosystem: String,
    pub url: String,
    pub created_at: DateTime<Utc>,
    pub list_sequence: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmittedMember {
    pub id: MemberId,
    pub name: String,
    pub endpoints: Endpoints,
    pub admitted_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    pub fingerprint: String,
    pub serial: String,
    pub member: MemberId,
    pub kind: CertificateKind,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub issued_at: DateTime<Utc>,
    pub cert_pem: String,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_reason: Option<String>,
}

fn hash(secret: &str) -> String {
    agora_trust::secrets::secret_digest(secret)
}

fn member_id(s: &str) -> Result<MemberId, StoreError> {
    MemberId::parse(s).map_err(|e| StoreError::Corrupt {
        what: "member id".into(),
        message: e.to_string(),
    })
}

fn opt_ts(v: Option<String>, what: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    v.map(|s| parse_ts(&s, what)).transpose()
}

fn member_from_row(r: &AnyRow) -> Result<AdmittedMember, StoreError> {
    let id: String = r.try_get(0)?;
    let what = format!("member {id}");
    Ok(AdmittedMember {
        id: member_id(&id)?,
        name: r.try_get(1)?,
        endpoints: json(&r.try_get::<String, _>(2)?, &what)?,
        admitted_at: parse_ts(&r.try_get::<String, _>(3)?, &what)?,
        revoked_at: opt_ts(r.try_get(4)?, &what)?,
        revoked_reason: r.try_get(5)?,
    })
}

macro_rules! member_select {
    ($rest:literal) => {
        concat!(
            "SELECT member_id, name, endpoints_json, admitted_at, revoked_at, revoked_reason \
             FROM authority_members ",
            $rest
        )
    };
}

macro_rules! cert_select {
    ($rest:literal) => {
        concat!(
            "SELECT fingerprint, serial, member_id, kind, not_before, not_after, issued_at, \
             cert_pem, revoked_at, revoked_reason FROM issued_certificates ",
            $rest
        )
    };
}

fn cert_from_row(r: &AnyRow) -> Result<IssuedCertificate, StoreError> {
    let fp: String = r.try_get(0)?;
    let what = format!("certificate {fp}");
    let kind: String = r.try_get(3)?;
    Ok(IssuedCertificate {
        serial: r.try_get(1)?,
        member: member_id(&r.try_get::<String, _>(2)?)?,
        kind: CertificateKind::parse(&kind).ok_or_else(|| StoreError::Corrupt {
            what: what.clone(),
            message: format!("unknown kind {kind:?}"),
        })?,
        not_before: parse_ts(&r.try_get::<String, _>(4)?, &what)?,
        not_after: parse_ts(&r.try_get::<String, _>(5)?, &what)?,
        issued_at: parse_ts(&r.try_get::<String, _>(6)?, &what)?,
        cert_pem: r.try_get(7)?,
        revoked_at: opt_ts(r.try_get(8)?, &what)?,
        revoked_reason: r.try_get(9)?,
        fingerprint: fp,
    })
}

async fn bump_sequence(tx: &mut Transaction<'_, Any>) -> Result<(), StoreError> {
    sqlx::query("UPDATE authority SET list_sequence = list_sequence + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn insert_cert(
    tx: &mut Transaction<'_, Any>,
    c: &IssuedCertificate,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO issued_certificates (fingerprint, serial, member_id, kind, not_before, \
         not_after, issued_at, cert_pem) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&c.fingerprint)
    .bind(&c.serial)
    .bind(c.member.as_str())
    .bind(c.kind.as_str())
    .bind(ts(c.not_before))
    .bind(ts(c.not_after))
    .bind(ts(c.issued_at))
    .bind(&c.cert_pem)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    pub async fn authority(&self) -> Result<Option<AuthorityRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT ecosystem, url, created_at, list_sequence FROM authority WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(AuthorityRecord {
                ecosystem: r.try_get(0)?,
                url: r.try_get(1)?,
                created_at: parse_ts(&r.try_get::<String, _>(2)?, "authority")?,
                list_sequence: r.try_get(3)?,
            })
        })
        .transpose()
    }

    pub async fn init_authority(
        &self,
        ecosystem: &str,
        url: &str,
    ) -> Result<AuthorityRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        if let Some(r) = sqlx::query("SELECT ecosystem FROM authority WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await?
        {
            return Err(StoreError::AlreadyInitialised(r.try_get(0)?));
        }
        let created = Utc::now();
        sqlx::query(
            "INSERT INTO authority (id, ecosystem, url, created_at, list_sequence) VALUES (1, $1, $2, $3, 1)",
        )
        .bind(ecosystem)
        .bind(url)
        .bind(ts(created))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(AuthorityRecord {
            ecosystem: ecosystem.to_owned(),
            url: url.to_owned(),
            created_at: created,
            list_sequence: 1,
        })
    }

    /// Changes the URL the authority publishes for itself.
    pub async fn set_authority_url(&self, url: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let res = sqlx::query("UPDATE authority SET url = $1 WHERE id = 1 AND url <> $1")
            .bind(url)
            .execute(&mut *tx)
            .await?;
        if res.rows_affected() > 0 {
            bump_sequence(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Admits a member (or re-admits one that is not revoked) and creates a one-time
    /// enrolment token valid for `ttl`. Returns the token's secret, which is not stored.
    pub async fn admit_member(
        &self,
        id: &MemberId,
        name: &str,
        ttl: chrono::Duration,
    ) -> Result<String, StoreError> {
        let mut tx = self.pool.begin().await?;
        let existing = sqlx::query(member_select!("WHERE member_id = $1"))
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        match existing.as_ref().map(member_from_row).transpose()? {
            Some(m) if m.revoked_at.is_some() => {
                return Err(StoreError::MemberRevoked(id.to_string()));
            }
            Some(_) => {
                sqlx::query("UPDATE authority_members SET name = $1 WHERE member_id = $2")
                    .bind(name)
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            None => {
                sqlx::query(
                    "INSERT INTO authority_members (member_id, name, endpoints_json, admitted_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(id.as_str())
                .bind(name)
                .bind(to_json(&Endpoints::default()))
                .bind(now())
                .execute(&mut *tx)
                .await?;
            }
        }
        let secret = agora_trust::secrets::random_hex();
        sqlx::query(
            "INSERT INTO enrolment_tokens (token_hash, member_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(hash(&secret))
        .bind(id.as_str())
        .bind(now())
        .bind(ts(Utc::now() + ttl))
        .execute(&mut *tx)
        .await?;
        bump_sequence(&mut tx).await?;
        tx.commit().await?;
        Ok(secret)
    }

    /// The member an enrolment token was made for, if the token is still usable. Nothing
    /// is consumed: [`Store::complete_enrolment`] does that, atomically with the issuance.
    pub async fn enrolment_member(&self, secret: &str) -> Result<AdmittedMember, StoreError> {
        let row = sqlx::query(
            "SELECT member_id, expires_at, used_at FROM enrolment_tokens WHERE token_hash = $1",
        )
        .bind(hash(secret))
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::EnrolmentRefused("the enrolment token is unknown".into()))?;
        let used: Option<String> = row.try_get(2)?;
        if used.is_some() {
            return Err(StoreError::EnrolmentRefused(
                "the enrolment token was already used; ask the authority for a new one".into(),
            ));
        }
        let expires = parse_ts(&row.try_get::<String, _>(1)?, "enrolment token")?;
        if expires <= Utc::now() {
            return Err(StoreError::EnrolmentRefused(format!(
                "the enrolment token expired at {expires}; ask the authority for a new one"
            )));
        }
        let member: String = row.try_get(0)?;
        let m = self
            .admitted_member(&member_id(&member)?)
            .await?
            .ok_or_else(|| StoreError::MemberNotFound(member.clone()))?;
        if m.revoked_at.is_some() {
            return Err(StoreError::MemberRevoked(member));
        }
        Ok(m)
    }

    /// Consumes the token and records the member's first certificate and its endpoints, in
    /// one transaction. A token used concurrently is refused here.
    pub async fn complete_enrolment(
        &self,
        secret: &str,
        endpoints: &Endpoints,
        cert: &IssuedCertificate,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let res = sqlx::query(
            "UPDATE enrolment_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL \
             AND expires_at > $1 AND member_id = $3",
        )
        .bind(now())
        .bind(hash(secret))
        .bind(cert.member.as_str())
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() != 1 {
            return Err(StoreError::EnrolmentRefused(
                "the enrolment token was used or expired meanwhile".into(),
            ));
        }
        sqlx::query("UPDATE authority_members SET endpoints_json = $1 WHERE member_id = $2")
            .bind(to_json(endpoints))
            .bind(cert.member.as_str())
            .execute(&mut *tx)
            .await?;
        insert_cert(&mut tx, cert).await?;
        bump_sequence(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a further certificate of an admitted member (renewal, client certificate),
    /// with the node's new endpoints when a renewal brings them — in one transaction.
    pub async fn record_certificate(
        &self,
        cert: &IssuedCertificate,
        endpoints: Option<&Endpoints>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if let Some(endpoints) = endpoints {
            sqlx::query("UPDATE authority_members SET endpoints_json = $1 WHERE member_id = $2")
                .bind(to_json(endpoints))
                .bind(cert.member.as_str())
                .execute(&mut *tx)
                .await?;
        }
        insert_cert(&mut tx, cert).await?;
        bump_sequence(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn admitted_member(
        &self,
        id: &MemberId,
    ) -> Result<Option<AdmittedMember>, StoreError> {
        sqlx::query(member_select!("WHERE member_id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(member_from_row)
            .transpose()
    }

    pub async fn admitted_members(&self) -> Result<Vec<AdmittedMember>, StoreError> {
        sqlx::query(member_select!("ORDER BY member_id"))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(member_from_row)
            .collect()
    }

    pub async fn issued_certificates(&self) -> Result<Vec<IssuedCertificate>, StoreError> {
        sqlx::query(cert_select!("ORDER BY member_id, issued_at"))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(cert_from_row)
            .collect()
    }

    pub async fn issued_certificate(
        &self,
        fingerprint: &str,
    ) -> Result<Option<IssuedCertificate>, StoreError> {
        sqlx::query(cert_select!("WHERE fingerprint = $1"))
            .bind(fingerprint)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(cert_from_row)
            .transpose()
    }

    /// Revokes a member and every certificate it holds, effective with the next trust list.
    pub async fn revoke_member(&self, id: &MemberId, reason: &str) -> Result<usize, StoreError> {
        let mut tx = self.pool.begin().await?;
        let at = now();
        let res = sqlx::query(
            "UPDATE authority_members SET revoked_at = $1, revoked_reason = $2 \
             WHERE member_id = $3 AND revoked_at IS NULL",
        )
        .bind(&at)
        .bind(reason)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() == 0 {
            let exists = sqlx::query("SELECT 1 FROM authority_members WHERE member_id = $1")
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            return Err(if exists {
                StoreError::MemberRevoked(id.to_string())
            } else {
                StoreError::MemberNotFound(id.to_string())
            });
        }
        let certs = sqlx::query(
            "UPDATE issued_certificates SET revoked_at = $1, revoked_reason = $2 \
             WHERE member_id = $3 AND revoked_at IS NULL",
        )
        .bind(&at)
        .bind(reason)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        // Unused enrolment tokens die with the membership.
        sqlx::query(
            "UPDATE enrolment_tokens SET used_at = $1 WHERE member_id = $2 AND used_at IS NULL",
        )
        .bind(&at)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        bump_sequence(&mut tx).await?;
        tx.commit().await?;
        Ok(certs.rows_affected() as usize)
    }

    /// Revokes one certificate (a lost laptop, a replaced key).
    pub async fn revoke_certificate(
        &self,
        fingerprint: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let res = sqlx::query(
            "UPDATE issued_certificates SET revoked_at = $1, revoked_reason = $2 \
             WHERE fingerprint = $3 AND revoked_at IS NULL",
        )
        .bind(now())
        .bind(reason)
        .bind(fingerprint)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::CertificateNotFound(fingerprint.to_owned()));
        }
        bump_sequence(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
}
