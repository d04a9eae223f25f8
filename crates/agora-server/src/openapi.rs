//! The statuses every operation can answer with for reasons of its shape rather than its
//! purpose, added to the generated OpenAPI document so that each operation lists every
//! status it returns: 401 without a valid token; 400, 413, 415 and 422 for a request body
//! that is not the JSON asked for; 400 for bad query parameters; 400 and 404 for a path
//! naming nothing; 502 and 503 where the node calls other members.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, ResponseBuilder};

/// Adds the shape-given statuses to every operation under `/api/v1` (the document itself
/// is public and has none).
pub(crate) fn document_common_responses(doc: &mut OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        let calls_members = path.starts_with("/api/v1/negotiations") || path == "/api/v1/query";
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            add(op, 401, "No token, or one that is unknown or revoked.");
            optional_not_null(op);
            if op.request_body.is_some() {
                add(op, 400, "The body is not valid JSON.");
                add(
                    op,
                    422,
                    "The body is JSON but not of the expected shape, or a value is not acceptable.",
                );
                add(op, 413, "The body is larger than the node accepts.");
                add(op, 415, "The body is not sent as application/json.");
            }
            let has = |op: &Operation, place: ParameterIn| {
                op.parameters
                    .iter()
                    .flatten()
                    .any(|p| p.parameter_in == place)
            };
            if has(op, ParameterIn::Query) {
                add(op, 400, "A query parameter is unknown or out of range.");
            }
            if has(op, ParameterIn::Path) {
                add(op, 400, "A path parameter is not valid.");
                add(op, 404, "Nothing has this name or id.");
            }
            if calls_members {
                add(
                    op,
                    502,
                    "Another member's node failed or could not be reached.",
                );
                add(
                    op,
                    503,
                    "The node is not enrolled in an ecosystem, or its trust list has expired.",
                );
            }
        }
    }
}

/// An optional query parameter is left out, never sent as null: its schema is the
/// value's type alone (the generator marks Rust's `Option` nullable).
fn optional_not_null(op: &mut Operation) {
    use utoipa::openapi::schema::{Schema, SchemaType, Type};
    use utoipa::openapi::{RefOr, Required};
    for p in op.parameters.iter_mut().flatten() {
        if p.required == Required::True {
            continue;
        }
        if let Some(RefOr::T(Schema::Object(o))) = p.schema.as_mut()
            && let SchemaType::Array(types) = &o.schema_type
        {
            let kept: Vec<Type> = types
                .iter()
                .filter(|t| **t != Type::Null)
                .cloned()
                .collect();
            if let [one] = kept.as_slice() {
                o.schema_type = SchemaType::Type(one.clone());
            }
        }
    }
}

/// Adds `status` with an error body unless the operation already documents it.
fn add(op: &mut Operation, status: u16, description: &str) {
    let key = status.to_string();
    if op.responses.responses.contains_key(&key) {
        return;
    }
    let response = ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build();
    op.responses.responses.insert(key, response.into());
}
