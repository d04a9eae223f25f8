//! The API's own shapes of what the node returns or takes where those are not the model's
//! wire formats, with their OpenAPI schemas: the node and the store know nothing of
//! OpenAPI. Each converts from (or into) the node's type field by field, so the API's
//! shape changes only here.

use agora_model::{ApiRole, MetadataPatch, Negotiation, NegotiationEvent, SourceFormat};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A token as listed: never its secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = TokenInfo)]
pub struct TokenView {
    pub id: String,
    pub label: String,
    pub role: ApiRole,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<agora_node::TokenInfo> for TokenView {
    fn from(t: agora_node::TokenInfo) -> Self {
        Self {
            id: t.id,
            label: t.label,
            role: t.role,
            created_at: t.created_at,
            revoked_at: t.revoked_at,
            last_used_at: t.last_used_at,
        }
    }
}

/// A negotiation with its history, as one side keeps it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = NegotiationRecord)]
pub struct NegotiationView {
    #[serde(flatten)]
    pub negotiation: Negotiation,
    pub events: Vec<NegotiationEvent>,
    /// Steps still to be delivered to the other member.
    pub undelivered: usize,
}

impl From<agora_node::agreements::NegotiationRecord> for NegotiationView {
    fn from(r: agora_node::agreements::NegotiationRecord) -> Self {
        Self {
            negotiation: r.negotiation,
            events: r.events,
            undelivered: r.undelivered,
        }
    }
}

/// What to register. Only `location` is required; the rest falls back to the sidecar file
/// next to the data, then to defaults.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RegisterRequest)]
pub struct RegisterBody {
    /// A local path (file or folder) or an object store URL.
    pub location: String,
    /// Product name (also its SQL table name); by default derived from the file name.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub format: Option<SourceFormat>,
    /// CSV delimiter, e.g. ";" or "\t".
    #[serde(default)]
    pub delimiter: Option<String>,
    #[serde(default)]
    pub has_header: Option<bool>,
    /// Metadata given with the request; overrides the sidecar field by field.
    #[serde(default)]
    pub metadata: MetadataPatch,
}

impl From<RegisterBody> for agora_node::RegisterRequest {
    fn from(b: RegisterBody) -> Self {
        Self {
            location: b.location,
            name: b.name,
            format: b.format,
            delimiter: b.delimiter,
            has_header: b.has_header,
            metadata: b.metadata,
        }
    }
}

/// One query by this node's own people and tools that read data products.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = AccessRecord)]
pub struct AccessView {
    pub id: String,
    pub started_at: DateTime<Utc>,
    /// Who ran it: `token:ID (LABEL)`, `user:NAME`, `cli:OS-USER` or `certificate:NAME`.
    pub principal: String,
    /// `api`, `web`, `cli` or `flight`.
    pub channel: String,
    /// The products the query's plan read, as named in SQL, comma-separated.
    pub products: String,
    /// The agreements other members' products were read under, comma-separated.
    pub agreements: String,
    /// SHA-256 of the SQL text, in hex.
    pub sql_digest: String,
    /// `running`, `answered`, `refused: …`, `failed: …` or `stopped by the client`.
    pub outcome: String,
    pub rows_returned: i64,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<agora_node::AccessRecord> for AccessView {
    fn from(a: agora_node::AccessRecord) -> Self {
        Self {
            id: a.id,
            started_at: a.started_at,
            principal: a.principal,
            channel: a.channel,
            products: a.products,
            agreements: a.agreements,
            sql_digest: a.sql_digest,
            outcome: a.outcome,
            rows_returned: a.rows_returned,
            finished_at: a.finished_at,
        }
    }
}
