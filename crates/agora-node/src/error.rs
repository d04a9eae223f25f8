//! The node's errors, and what kind of failure each is. Front ends (the HTTP API, Flight,
//! the web pages, the command line) map an error's [`ErrorKind`] to their own codes: this
//! module is the one place that looks inside store, engine and exchange errors.

use agora_engine::EngineError;
use agora_model::{IdError, MetadataError, SidecarError, SourceError};
use agora_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(
        "the data directory {0} is not initialised: run `agora node init --data-dir {0} --member MEMBER-ID` first"
    )]
    NotInitialised(String),
    #[error("the data directory {path} is not writable: {source}")]
    DataDirNotWritable {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Engine(#[from] EngineError),
    #[error("{0}")]
    Metadata(#[from] MetadataError),
    #[error("{0}")]
    Sidecar(#[from] SidecarError),
    #[error("{0}")]
    Id(#[from] IdError),
    #[error("{0}")]
    Source(#[from] SourceError),
    #[error("cannot register {path}: {reason}")]
    BadLocation { path: String, reason: String },
    #[error(
        "this node belongs to member {node:?}, but the metadata names {given:?} as owner: a node registers only its own member's products"
    )]
    ForeignOwner { node: String, given: String },
    #[error("{0}")]
    Trust(#[from] agora_trust::TrustError),
    #[error("{0}")]
    Exchange(#[from] agora_exchange::ExchangeError),
    #[error("the transparency log: {0}")]
    Transparency(String),
    #[error("{0}")]
    NotFound(String),
    #[error(
        "this node has not joined an ecosystem: run `agora node enroll --authority URL --token TOKEN` first"
    )]
    NotEnrolled,
    #[error(
        "the node's trust list expired at {expired_at} and the grace period of {grace_minutes} minutes is over: it serves and calls no other member until it gets a fresh list from the authority"
    )]
    TrustListExpired {
        expired_at: chrono::DateTime<chrono::Utc>,
        grace_minutes: i64,
    },
    #[error("member {peer} refused: {reason}")]
    PeerRefused { peer: String, reason: String },
    #[error("{0}")]
    Negotiation(#[from] agora_model::NegotiationError),
    #[error("{0}")]
    Terms(#[from] agora_model::TermsError),
    #[error("{0}")]
    Policy(#[from] agora_policy::PolicyError),
    #[error("{0}")]
    Agreement(String),
    #[error("{0}")]
    BadUser(String),
    #[error("{0}")]
    Settings(String),
    #[error("the node is busy checking other passwords; try again in a few seconds")]
    Busy,
    #[error(
        "{0} does not exist or is outside the folders this node may read for API clients; ask the node's operator to allow it (agora node start --allow-path DIR) or register it with the CLI"
    )]
    OutsideAllowedFolders(String),
    /// The caller may not do this here (the text says who can).
    #[error("{0}")]
    Forbidden(String),
    /// Something the caller sent is not what it should be (the text says what).
    #[error("{0}")]
    BadInput(String),
    /// The caller asked too often (the text says when it may ask again).
    #[error("{0}")]
    RateLimited(String),
}

impl NodeError {
    /// True when the error is the caller's fault and retrying the same request won't help.
    pub fn is_user_error(&self) -> bool {
        match self {
            Self::Engine(e) => e.is_user_error() || matches!(e, EngineError::Source { .. }),
            Self::Store(e) => matches!(
                e,
                StoreError::DuplicateProduct(_)
                    | StoreError::ProductNotFound(_)
                    | StoreError::Conflict(_)
                    | StoreError::TokenNotFound(_)
                    | StoreError::AlreadyInitialised(_)
                    | StoreError::NegotiationNotFound(_)
                    | StoreError::NegotiationMoved { .. }
                    | StoreError::DuplicateUser(_)
                    | StoreError::UserNotFound(_)
            ),
            Self::Negotiation(_) | Self::Terms(_) | Self::Agreement(_) | Self::BadUser(_) => true,
            Self::Metadata(_)
            | Self::Sidecar(_)
            | Self::Id(_)
            | Self::Source(_)
            | Self::BadLocation { .. }
            | Self::ForeignOwner { .. }
            | Self::OutsideAllowedFolders(_)
            | Self::NotFound(_)
            | Self::Forbidden(_)
            | Self::BadInput(_)
            | Self::RateLimited(_) => true,
            Self::Trust(_) | Self::NotEnrolled | Self::PeerRefused { .. } => true,
            Self::NotInitialised(_)
            | Self::DataDirNotWritable { .. }
            | Self::Exchange(_)
            | Self::Transparency(_)
            | Self::Policy(_)
            | Self::Settings(_)
            | Self::Busy
            | Self::TrustListExpired { .. } => false,
        }
    }
}

/// What kind of failure an error is, independent of how it is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// What was named does not exist.
    NotFound,
    /// What was to be created exists already.
    AlreadyExists,
    /// The request does not fit the current state (a negotiation moved on, an agreement in
    /// force for the same purpose).
    Conflict,
    /// An access request or terms that do not fit the vocabulary or the product.
    InvalidRequest,
    /// SQL that does not parse, plan or evaluate.
    InvalidSql,
    /// SQL that would change data.
    ReadOnly,
    /// A query reaching data it has no agreement or right for.
    AccessDenied,
    /// The caller may not do this (a location outside the folders it may read).
    Forbidden,
    /// Another member (or this node, for another member) refused.
    PeerRefused,
    /// Another member could not be reached or answered wrongly.
    PeerFailed,
    /// A product's data cannot be read.
    UnreadableData,
    /// A product's data no longer has the schema it was registered with.
    SchemaDrift,
    /// Metadata or a sidecar that is incomplete or wrong.
    InvalidMetadata,
    /// Some other part of the request is wrong (a name, a location, a setting given).
    BadRequest,
    /// A query passed one of the node's limits.
    QueryLimit,
    /// An answer cannot be given in the format asked for.
    UnsupportedFormat,
    /// The node's trust list expired beyond its grace period.
    TrustListExpired,
    /// The node has not joined an ecosystem.
    NotEnrolled,
    /// The caller asked too often; it may ask again later.
    RateLimited,
    /// The node failed for reasons of its own.
    Internal,
}

impl ErrorKind {
    /// A stable, machine-readable name, such as `not_found` or `invalid_sql`.
    pub fn code(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::Conflict => "conflict",
            Self::InvalidRequest => "invalid_request",
            Self::InvalidSql => "invalid_sql",
            Self::ReadOnly => "read_only",
            Self::AccessDenied => "access_denied",
            Self::Forbidden => "forbidden",
            Self::PeerRefused => "peer_refused",
            Self::PeerFailed => "peer_failed",
            Self::UnreadableData => "unreadable_data",
            Self::SchemaDrift => "schema_drift",
            Self::InvalidMetadata => "invalid_metadata",
            Self::BadRequest => "bad_request",
            Self::QueryLimit => "query_limit",
            Self::UnsupportedFormat => "unsupported_format",
            Self::TrustListExpired => "trust_list_expired",
            Self::NotEnrolled => "not_enrolled",
            Self::RateLimited => "rate_limited",
            Self::Internal => "internal",
        }
    }
}

impl NodeError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        use ErrorKind as K;
        match self {
            Self::Store(e) => match e {
                StoreError::ProductNotFound(_)
                | StoreError::TokenNotFound(_)
                | StoreError::NegotiationNotFound(_) => K::NotFound,
                StoreError::DuplicateProduct(_) => K::AlreadyExists,
                StoreError::Conflict(_) | StoreError::NegotiationMoved { .. } => K::Conflict,
                _ if self.is_user_error() => K::BadRequest,
                _ => K::Internal,
            },
            Self::Engine(e) => Self::engine_kind(e),
            Self::Agreement(_) => K::Conflict,
            Self::Negotiation(_) | Self::Terms(_) => K::InvalidRequest,
            Self::Metadata(_) | Self::Sidecar(_) | Self::ForeignOwner { .. } => K::InvalidMetadata,
            Self::Id(_) | Self::Source(_) | Self::BadLocation { .. } => K::BadRequest,
            Self::PeerRefused { .. } => K::PeerRefused,
            Self::OutsideAllowedFolders(_) | Self::Forbidden(_) => K::Forbidden,
            Self::Exchange(_) => K::PeerFailed,
            Self::TrustListExpired { .. } => K::TrustListExpired,
            Self::NotEnrolled => K::NotEnrolled,
            Self::NotFound(_) => K::NotFound,
            Self::RateLimited(_) => K::RateLimited,
            _ if self.is_user_error() => K::BadRequest,
            _ => K::Internal,
        }
    }

    fn engine_kind(e: &EngineError) -> ErrorKind {
        use ErrorKind as K;
        match e {
            EngineError::Syntax(_) | EngineError::Plan(_) | EngineError::Evaluation(_) => {
                K::InvalidSql
            }
            EngineError::NotReadOnly(_) => K::ReadOnly,
            EngineError::AccessDenied(_) => K::AccessDenied,
            EngineError::RemoteRefused(_) => K::PeerRefused,
            EngineError::Remote(_) => K::PeerFailed,
            EngineError::Source { .. } => K::UnreadableData,
            EngineError::SchemaDrift { .. } => K::SchemaDrift,
            EngineError::Limit(_) => K::QueryLimit,
            EngineError::Format(_) => K::UnsupportedFormat,
            _ if e.is_user_error() => K::BadRequest,
            _ => K::Internal,
        }
    }
}
