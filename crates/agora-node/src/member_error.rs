//! Errors as another member sees them (the exchange listener's answers, Flight refusals).
//!
//! Whatever crosses the exchange boundary (the exchange listener's answers and refusals,
//! Flight refusals and failures of member queries) says what the other member can act on —
//! its own message was malformed, its terms do not fit, its SQL is wrong, it needs an
//! agreement — and nothing of the owner's inside: no paths, key files, database or engine
//! details, other parties' SQL or internal state. Only the variants listed here carry their
//! message across; every other error becomes a generic one (and is logged in full at the
//! owner). `tests::no_error_discloses_the_owners_inside` checks every variant.

use agora_engine::EngineError;
use agora_store::StoreError;

use crate::NodeError;

/// What another member is told when an expression of its query failed on a value.
pub const EVALUATION_FAILED: &str = "your query failed while computing one of its expressions \
     (a division by zero, a cast that failed, or a function given a value it does not take); \
     the details are withheld because the data is protected: check the query's expressions";

/// What another member is told when the owner failed for reasons of its own.
pub const OWNER_FAILED: &str = "the owner could not complete this; the details are logged at \
     the owner's node: try again later or contact the owner";

/// What another member is told when the owner cannot read a product.
pub const OWNER_CANNOT_READ: &str =
    "the owner cannot read this product right now; try again later or contact the owner";

/// What another member is told when its query passed one of the owner's limits: which
/// kind of limit, in the owner's fixed words.
fn limit_for_member(message: &str) -> &'static str {
    if message.starts_with(agora_engine::LIMIT_MEMORY) {
        "your query needs more memory than the owner allows one query: narrow it (fewer rows, \
         fewer joined rows, an aggregate) and try again"
    } else if message.starts_with(agora_engine::LIMIT_TIME) {
        "your query took longer than the owner allows one query: narrow it and try again"
    } else {
        "your query is longer, deeper or larger than the owner accepts: shorten or simplify it"
    }
}

/// How an error is classed for another member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberFault {
    /// The member's request is wrong (bad message, terms, SQL).
    Invalid,
    /// The member may not do this (no agreement, refused, read-only).
    Denied,
    /// The negotiation named does not exist, or moved on.
    Conflict,
    /// The owner cannot serve now (its trust list, its data).
    Unavailable,
    /// The owner failed.
    Internal,
}

/// The class and words of `e` for another member.
pub fn for_member(e: &NodeError) -> (MemberFault, String) {
    use MemberFault::*;
    match e {
        NodeError::BadInput(_) | NodeError::RateLimited(_) => (Invalid, e.to_string()),
        NodeError::Negotiation(_) | NodeError::Terms(_) | NodeError::Id(_) => {
            (Invalid, e.to_string())
        }
        NodeError::Agreement(_) => (Conflict, e.to_string()),
        NodeError::Store(
            StoreError::NegotiationNotFound(_) | StoreError::NegotiationMoved { .. },
        ) => (Conflict, e.to_string()),
        NodeError::PeerRefused { .. } | NodeError::Forbidden(_) => (Denied, e.to_string()),
        NodeError::TrustListExpired { .. } | NodeError::NotEnrolled => (Unavailable, e.to_string()),
        NodeError::Engine(engine) => match engine {
            EngineError::AccessDenied(m) => (Denied, m.clone()),
            EngineError::NotReadOnly(_) => (Denied, engine.to_string()),
            EngineError::Syntax(_) | EngineError::Plan(_) => (Invalid, engine.to_string()),
            EngineError::Limit(m) => (Invalid, limit_for_member(m).into()),
            EngineError::Evaluation(_) => (Invalid, EVALUATION_FAILED.into()),
            EngineError::Format(_) => (Internal, OWNER_FAILED.into()),
            EngineError::Source { .. }
            | EngineError::SchemaDrift { .. }
            | EngineError::Execution(_) => (Unavailable, OWNER_CANNOT_READ.into()),
            EngineError::Terms(_)
            | EngineError::Encode(_)
            | EngineError::Remote(_)
            | EngineError::RemoteRefused(_) => (Internal, OWNER_FAILED.into()),
        },
        NodeError::NotInitialised(_)
        | NodeError::DataDirNotWritable { .. }
        | NodeError::Store(_)
        | NodeError::Metadata(_)
        | NodeError::Sidecar(_)
        | NodeError::Source(_)
        | NodeError::BadLocation { .. }
        | NodeError::ForeignOwner { .. }
        | NodeError::OutsideAllowedFolders(_)
        | NodeError::Trust(_)
        | NodeError::Exchange(_)
        | NodeError::Transparency(_)
        | NodeError::NotFound(_)
        | NodeError::Policy(_)
        | NodeError::Settings(_)
        | NodeError::BadUser(_) => (Internal, OWNER_FAILED.into()),
        NodeError::Busy => (Unavailable, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "/srv/owner-secret/trust/linkage/fraud_prevention--ea--1.key";

    fn io() -> std::io::Error {
        std::io::Error::other(SECRET)
    }

    /// One error of every variant (and every engine variant), each carrying the secret in
    /// every text it holds.
    fn every_error() -> Vec<NodeError> {
        let s = || SECRET.to_owned();
        let engine = [
            EngineError::Syntax(s()),
            EngineError::Plan(s()),
            EngineError::NotReadOnly(s()),
            EngineError::Source {
                location: s(),
                message: s(),
            },
            EngineError::SchemaDrift {
                product: s(),
                location: s(),
                detail: s(),
            },
            EngineError::Execution(s()),
            EngineError::Evaluation(s()),
            EngineError::Encode(s()),
            EngineError::AccessDenied(s()),
            EngineError::Remote(s()),
            EngineError::RemoteRefused(s()),
            EngineError::Terms(s()),
            EngineError::Limit(s()),
            EngineError::Format(s()),
        ];
        let mut out: Vec<NodeError> = engine.into_iter().map(NodeError::Engine).collect();
        out.extend([
            NodeError::NotInitialised(s()),
            NodeError::Settings(s()),
            NodeError::DataDirNotWritable {
                path: s(),
                source: io(),
            },
            NodeError::Store(StoreError::Conflict(s())),
            NodeError::BadLocation {
                path: s(),
                reason: s(),
            },
            NodeError::ForeignOwner {
                node: s(),
                given: s(),
            },
            NodeError::Trust(agora_trust::TrustError::Io {
                path: s(),
                source: io(),
            }),
            NodeError::Exchange(agora_exchange::ExchangeError::Setup(s())),
            NodeError::Transparency(s()),
            NodeError::NotFound(s()),
            NodeError::BadUser(s()),
            NodeError::OutsideAllowedFolders(s()),
        ]);
        out
    }

    /// Errors that may carry their words across, because those words are about the other
    /// member's own request: their texts come from its message, terms or SQL.
    fn about_the_request(e: &NodeError) -> bool {
        matches!(
            e,
            NodeError::Engine(
                EngineError::Syntax(_)
                    | EngineError::Plan(_)
                    | EngineError::NotReadOnly(_)
                    | EngineError::AccessDenied(_)
            )
        )
    }

    #[test]
    fn no_error_discloses_the_owners_inside() {
        for e in every_error() {
            let (_, message) = for_member(&e);
            if about_the_request(&e) {
                continue;
            }
            assert!(
                !message.contains("owner-secret") && !message.contains(".key"),
                "{e:?} crosses as {message:?}"
            );
        }
        // An expression's failure is told in the same words whatever the value.
        let a = for_member(&NodeError::Engine(EngineError::Evaluation(
            "cannot cast 'Anna'".into(),
        )));
        let b = for_member(&NodeError::Engine(EngineError::Evaluation(
            "cannot cast 'Ben'".into(),
        )));
        assert_eq!(a, b);
        assert_eq!(a.0, MemberFault::Invalid);
    }
}
