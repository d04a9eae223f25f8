//! Access policy decisions, in Cedar.
//!
//! Which members may request which products, for which purposes, in which access mode, and
//! which requests an owner's node may approve without a steward, are Cedar policies
//! evaluated against the Cedar schema in `agora.cedarschema`. Every node applies the
//! ecosystem's baseline (`baseline.cedar`) and its owner's own policies; all of them are
//! validated against the schema when the node starts, so a policy naming an unknown
//! attribute or action stops the start with a message naming the file and the policy.
//!
//! Deny by default: a request is allowed only when some policy permits it and none forbids
//! it. Every [`Decision`] says which policies decided it and why (each policy's `@reason`).
//!
//! This crate knows the model's terms and Cedar; it knows nothing of the query engine, the
//! store or HTTP.

use std::collections::BTreeSet;
use std::str::FromStr;

use agora_model::{
    AccessMode, AccessRequest, ColumnRole, Mask, MemberId, ProductMetadata, ProductName,
};
use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, EntityUid, Policy, PolicyId,
    PolicySet, Request, Schema, ValidationMode, Validator,
};
use serde::Serialize;

/// The Cedar schema every policy is validated against.
pub const SCHEMA: &str = include_str!("agora.cedarschema");
/// The ecosystem's baseline policies.
pub const BASELINE: &str = include_str!("baseline.cedar");

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("the policy schema is invalid: {0}")]
    Schema(String),
    #[error("cannot read policies in {origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("policy {id} (in {origin}) does not fit the policy schema: {message}")]
    Invalid {
        id: String,
        origin: String,
        message: String,
    },
    #[error("two policies have the id {0:?}; give each policy its own @id(\"...\")")]
    DuplicateId(String),
    #[error("cannot evaluate the request: {0}")]
    Request(String),
}

/// What a policy decision is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyAction {
    /// May the consumer ask for this?
    Request,
    /// May the owner's node approve it without a steward?
    AutoApprove,
}

impl PolicyAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::AutoApprove => "auto_approve",
        }
    }
}

/// A request as policies see it.
#[derive(Debug, Clone, Serialize)]
pub struct RequestFacts {
    pub consumer: MemberId,
    pub owner: MemberId,
    pub product: ProductName,
    pub classification: String,
    /// Purposes the owner admits for the product.
    pub admitted_purposes: Vec<String>,
    pub purpose: String,
    pub mode: AccessMode,
    pub legal_basis: String,
    pub explicit_legal_basis: bool,
    pub unmasked_direct_identifiers: bool,
    pub columns: Vec<String>,
    /// Requested columns without a mask.
    pub unmasked_columns: Vec<String>,
    /// Masked columns as `column=mask`.
    pub masks: Vec<String>,
    /// Some sensitive-role column is requested without a mask.
    pub unmasked_sensitive: bool,
    /// The row filter, or empty.
    pub row_filter: String,
    pub measures: Vec<String>,
    /// An agreement for the same product and purpose is in force with the consumer (the
    /// node sets this; `of` cannot know it).
    pub replaces_agreement_in_force: bool,
    pub max_rows: u64,
    pub min_group_size: u32,
    pub validity_days: i64,
}

impl RequestFacts {
    /// The facts of a consumer's request for a product with this metadata, under `terms`
    /// (the request's own, or a counter-offer's).
    pub fn of(
        consumer: &MemberId,
        request: &AccessRequest,
        terms: &agora_model::AgreementTerms,
        metadata: &ProductMetadata,
    ) -> Self {
        let unmasked_direct_identifiers = terms.columns.iter().any(|c| {
            let role = metadata.role_of(&c.name);
            matches!(role, ColumnRole::DirectIdentifier | ColumnRole::SubjectId)
                && !matches!(c.mask, Some(Mask::Redact | Mask::Pseudonym))
                && !(terms.mode == AccessMode::Aggregate && role == ColumnRole::SubjectId)
        });
        Self {
            consumer: consumer.clone(),
            owner: request.owner.clone(),
            product: request.product.clone(),
            classification: metadata.classification.to_string(),
            admitted_purposes: metadata.purposes.clone(),
            purpose: request.purpose.clone(),
            mode: terms.mode,
            legal_basis: request.legal_basis.clone(),
            explicit_legal_basis: metadata.legal_basis.is_some()
                && matches!(
                    request.legal_basis.as_str(),
                    "legal_obligation" | "public_task"
                ),
            unmasked_direct_identifiers,
            columns: terms.columns.iter().map(|c| c.name.clone()).collect(),
            unmasked_columns: terms
                .columns
                .iter()
                .filter(|c| c.mask.is_none())
                .map(|c| c.name.clone())
                .collect(),
            masks: terms
                .columns
                .iter()
                .filter_map(|c| c.mask.map(|m| format!("{}={}", c.name, m.label())))
                .collect(),
            unmasked_sensitive: terms
                .columns
                .iter()
                .any(|c| c.mask.is_none() && metadata.role_of(&c.name) == ColumnRole::Sensitive),
            row_filter: terms.row_filter.clone().unwrap_or_default(),
            measures: terms.measures.clone(),
            replaces_agreement_in_force: false,
            max_rows: terms.max_rows.unwrap_or(0),
            min_group_size: terms.min_group_size,
            validity_days: (request.valid_until - request.valid_from).num_days(),
        }
    }
}

/// One policy that decided a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Determining {
    pub id: String,
    /// `permit` or `forbid`.
    pub effect: String,
    pub reason: String,
    /// Where the policy comes from: `baseline` or the owner's file.
    pub origin: String,
}

/// A policy decision and its explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub action: PolicyAction,
    pub allowed: bool,
    /// The policies that decided: the permits that allowed it, or the forbids that denied
    /// it (none when nothing permitted it: deny by default).
    pub determining: Vec<Determining>,
    /// Policies that could not be evaluated (they count as not applying).
    pub errors: Vec<String>,
}

impl Decision {
    /// The decision in one sentence.
    pub fn explain(&self) -> String {
        let what = match self.action {
            PolicyAction::Request => "the request",
            PolicyAction::AutoApprove => "automatic approval",
        };
        if self.determining.is_empty() {
            return format!(
                "{what} is denied: no policy permits it (access is denied unless a policy \
                 permits it)"
            );
        }
        let reasons = self
            .determining
            .iter()
            .map(|d| format!("{} ({})", d.reason, d.id))
            .collect::<Vec<_>>()
            .join("; ");
        if self.allowed {
            format!("{what} is permitted: {reasons}")
        } else {
            format!("{what} is forbidden: {reasons}")
        }
    }

    /// The ids of the deciding policies.
    pub fn policy_ids(&self) -> Vec<String> {
        self.determining.iter().map(|d| d.id.clone()).collect()
    }
}

struct Loaded {
    effect: String,
    reason: String,
    origin: String,
}

/// The validated policies of one node.
pub struct PolicyEngine {
    schema: Schema,
    policies: PolicySet,
    loaded: std::collections::HashMap<String, Loaded>,
    authorizer: Authorizer,
}

impl std::fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyEngine")
            .field("policies", &self.loaded.keys().collect::<BTreeSet<_>>())
            .finish()
    }
}

impl PolicyEngine {
    /// The baseline plus the owner's policies (`(origin, text)`: a file name and its
    /// content), validated against the schema.
    pub fn new(owner_policies: &[(String, String)]) -> Result<Self, PolicyError> {
        let (schema, _warnings) =
            Schema::from_cedarschema_str(SCHEMA).map_err(|e| PolicyError::Schema(e.to_string()))?;
        let mut policies = PolicySet::new();
        let mut loaded = std::collections::HashMap::new();
        let sources = std::iter::once(("baseline".to_owned(), BASELINE.to_owned()))
            .chain(owner_policies.iter().cloned());
        for (origin, text) in sources {
            let set = PolicySet::from_str(&text).map_err(|e| PolicyError::Parse {
                origin: origin.clone(),
                message: flatten(&e),
            })?;
            if set.templates().next().is_some() {
                return Err(PolicyError::Parse {
                    origin,
                    message: "policy templates are not supported; write plain policies".into(),
                });
            }
            // Policies in text order, so generated ids follow the file.
            let mut in_file: Vec<&Policy> = set.policies().collect();
            in_file.sort_by_key(|p| {
                p.id()
                    .to_string()
                    .trim_start_matches("policy")
                    .parse::<u64>()
                    .unwrap_or(0)
            });
            for (i, p) in in_file.into_iter().enumerate() {
                let id = p
                    .annotation("id")
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("{origin}#{}", i + 1));
                if loaded.contains_key(&id) {
                    return Err(PolicyError::DuplicateId(id));
                }
                let effect = match p.effect() {
                    cedar_policy::Effect::Permit => "permit",
                    cedar_policy::Effect::Forbid => "forbid",
                }
                .to_owned();
                let reason = p
                    .annotation("reason")
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("{effect} policy {id}"));
                policies
                    .add(p.new_id(PolicyId::new(&id)))
                    .map_err(|e| PolicyError::Parse {
                        origin: origin.clone(),
                        message: e.to_string(),
                    })?;
                loaded.insert(
                    id,
                    Loaded {
                        effect,
                        reason,
                        origin: origin.clone(),
                    },
                );
            }
        }
        let validation = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
        if let Some(e) = validation.validation_errors().next() {
            let id = e.policy_id().to_string();
            let origin = loaded
                .get(&id)
                .map(|l| l.origin.clone())
                .unwrap_or_default();
            return Err(PolicyError::Invalid {
                id,
                origin,
                message: flatten(e),
            });
        }
        Ok(Self {
            schema,
            policies,
            loaded,
            authorizer: Authorizer::new(),
        })
    }

    /// How many policies are in force.
    pub fn len(&self) -> usize {
        self.loaded.len()
    }

    pub fn is_empty(&self) -> bool {
        self.loaded.is_empty()
    }

    pub fn decide(
        &self,
        action: PolicyAction,
        facts: &RequestFacts,
    ) -> Result<Decision, PolicyError> {
        let bad = |e: &dyn std::fmt::Display| PolicyError::Request(e.to_string());
        let principal = uid("Member", facts.consumer.as_str()).map_err(|e| bad(&e))?;
        let resource_id = format!("{}/{}", facts.owner, facts.product);
        let resource = uid("Product", &resource_id).map_err(|e| bad(&e))?;
        let action_uid = uid("Action", action.as_str()).map_err(|e| bad(&e))?;
        let entities = Entities::from_json_value(
            serde_json::json!([
                {"uid": {"type": "Member", "id": facts.consumer.as_str()}, "attrs": {}, "parents": []},
                {"uid": {"type": "Member", "id": facts.owner.as_str()}, "attrs": {}, "parents": []},
                {"uid": {"type": "Product", "id": resource_id},
                 "attrs": {
                     "owner": {"__entity": {"type": "Member", "id": facts.owner.as_str()}},
                     "name": facts.product.as_str(),
                     "classification": facts.classification,
                     "purposes": facts.admitted_purposes,
                 },
                 "parents": []}
            ]),
            Some(&self.schema),
        )
        .map_err(|e| bad(&e))?;
        let context = Context::from_json_value(
            serde_json::json!({
                "purpose": facts.purpose,
                "mode": facts.mode.as_str(),
                "legal_basis": facts.legal_basis,
                "explicit_legal_basis": facts.explicit_legal_basis,
                "unmasked_direct_identifiers": facts.unmasked_direct_identifiers,
                "columns": facts.columns,
                "unmasked_columns": facts.unmasked_columns,
                "masks": facts.masks,
                "unmasked_sensitive": facts.unmasked_sensitive,
                "row_filter": facts.row_filter,
                "measures": facts.measures,
                "replaces_agreement_in_force": facts.replaces_agreement_in_force,
                "max_rows": i64::try_from(facts.max_rows).unwrap_or(i64::MAX),
                "min_group_size": i64::from(facts.min_group_size),
                "validity_days": facts.validity_days,
            }),
            Some((&self.schema, &action_uid)),
        )
        .map_err(|e| bad(&e))?;
        let request = Request::new(principal, action_uid, resource, context, Some(&self.schema))
            .map_err(|e| bad(&e))?;
        let response = self
            .authorizer
            .is_authorized(&request, &self.policies, &entities);
        let allowed = response.decision() == CedarDecision::Allow;
        let mut determining: Vec<Determining> = response
            .diagnostics()
            .reason()
            .map(|id| {
                let id = id.to_string();
                let l = self.loaded.get(&id);
                Determining {
                    effect: l.map(|l| l.effect.clone()).unwrap_or_default(),
                    reason: l.map(|l| l.reason.clone()).unwrap_or_default(),
                    origin: l.map(|l| l.origin.clone()).unwrap_or_default(),
                    id,
                }
            })
            .collect();
        determining.sort_by(|a, b| a.id.cmp(&b.id));
        let errors = response
            .diagnostics()
            .errors()
            .map(|e| e.to_string())
            .collect();
        Ok(Decision {
            action,
            allowed,
            determining,
            errors,
        })
    }
}

fn uid(kind: &str, id: &str) -> Result<EntityUid, String> {
    let type_name = cedar_policy::EntityTypeName::from_str(kind).map_err(|e| e.to_string())?;
    Ok(EntityUid::from_type_name_and_id(
        type_name,
        cedar_policy::EntityId::new(id),
    ))
}

/// A Cedar error with its causes, on one line.
fn flatten(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        source = s.source();
    }
    out
}
