//! The Agora domain model: members, data products, their metadata and profiles.
//!
//! This crate does no I/O. Everything here is plain data with validation rules,
//! so that every other layer (store, engine, server, CLI) agrees on what a valid
//! product looks like.

mod agreement;
mod audit;
mod citizen;
mod disclosure;
mod ids;
mod metadata;
mod negotiation;
mod person_id;
mod product;
mod retention;
mod role;
mod sidecar;
mod trust;

pub use agreement::{
    AccessMode, AgreementTerms, ColumnTerm, DEFAULT_MIN_GROUP_SIZE, Mask, QueryBounds, TermsError,
    mask_fits,
};
pub use audit::{
    AuditContext, AuditEntry, AuditEntryError, AuditKind, CSV_COLUMNS, EntryFilter, GroupRelease,
    LoggedEntry, MAX_ENTRY_BYTES, SubjectCommitment, WITNESSED_SIZE_HEADER, WitnessReply,
    WitnessRequest, audit_origin, entries_csv, witness_name,
};
pub use citizen::{
    BucketElement, HeldProduct, ProvenEntry, SubjectConsentAnswer, SubjectConsentRequest,
    SubjectHistoryAnswer, SubjectHistoryRequest, SubjectHoldingsAnswer, SubjectHoldingsRequest,
    SubjectTagAnswer, SubjectTagRequest,
};
pub use disclosure::{CountNoise, DisclosureControl, Dominance, MAX_COUNT_NOISE, MagnitudeNoise};
pub use ids::{IdError, MemberId, ProductName};
pub use metadata::{
    Classification, ColumnAnnotation, ColumnRole, MetadataError, MetadataPatch, ProductMetadata,
    Theme, UpdateFrequency,
};
pub use negotiation::{
    AccessRequest, Agreement, AgreementSignatures, LEGAL_BASES, MAX_VALIDITY_DAYS, Negotiation,
    NegotiationError, NegotiationEvent, NegotiationMessage, NegotiationReply, NegotiationRole,
    NegotiationState, Validity, applicable_agreement,
};
pub use person_id::{person_id_check_digit, person_id_is_valid};
pub use product::{
    ColumnProfile, ColumnSchema, DataSource, HISTOGRAM_MIN_COUNT, Histogram, HistogramBin, Offer,
    Page, PageError, PageRequest, Product, ProductProfile, SearchHit, SourceError, SourceFormat,
};
pub use retention::{Retention, RetentionError};
pub use role::ApiRole;
pub use sidecar::{Sidecar, SidecarError, SidecarSource};
pub use trust::{
    CertificateKind, CertificateRequest, Direction, Endpoints, EnrolRequest, ExchangeEnd,
    ExchangeRecord, ExchangeStart, FlightTicket, IssuedBundle, LinkageKeyGrant, LinkageKeyRequest,
    ListedCertificate, Revocation, SignedTrustList, Standing, TrustList, TrustedMember, https_host,
    paths,
};

/// The purposes vocabulary of the ecosystem: every access request names one.
pub const PURPOSES: &[&str] = &[
    "job_matching",
    "fraud_prevention",
    "debt_recovery",
    "public_health_research",
    "official_statistics",
    "welfare_targeting",
    "emergency_response",
    "service_delivery",
];
