//! The auditor's view: the node's transparency log — every exchange, access, decision,
//! agreement step, signature, revocation and token or user change — filtered by kind,
//! member, product, agreement, purpose, outcome and time; each entry with its inclusion
//! proof and the checkpoint it is in; the same list as CSV or JSON. Auditors and
//! administrators only (the API's `auditor` role).

use agora_model::{AuditKind, EntryFilter, LoggedEntry};
use agora_node::ApiRole;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use crate::Web;
use crate::layout::{FieldError, Frame, Section, error_summary, field_class, field_message};
use crate::session::{Viewer, urlencode};

/// Entries per page.
const PER_PAGE: u32 = 50;
/// The most entries one export holds.
const MAX_EXPORT: u32 = 1000;

/// The filters, as the form sends them (every field text, checked here).
#[derive(Deserialize, Default)]
pub(crate) struct AuditForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    peer: String,
    #[serde(default)]
    product: String,
    #[serde(default)]
    agreement: String,
    #[serde(default)]
    purpose: String,
    #[serde(default)]
    outcome: String,
    /// A date (`YYYY-MM-DD`): entries on or after it.
    #[serde(default)]
    from: String,
    /// A date: entries on or before it.
    #[serde(default)]
    until: String,
    /// Entries with an index below it (the next page).
    #[serde(default)]
    before: String,
}

/// The longest text a filter field takes.
const MAX_FIELD: usize = 200;

impl AuditForm {
    /// The store's filter, or the fields' errors.
    fn filter(&self, limit: u32) -> Result<EntryFilter, Vec<FieldError>> {
        let mut errors = Vec::new();
        let kind = match self.kind.trim() {
            "" => None,
            k => match AuditKind::ALL.iter().find(|x| x.as_str() == k) {
                Some(x) => Some(x.as_str().to_owned()),
                None => {
                    errors.push(FieldError {
                        field: "kind",
                        message: "Choose a kind of entry from the list".into(),
                    });
                    None
                }
            },
        };
        let mut text = |field: &'static str, value: &str, label: &str| {
            let v = value.trim();
            if v.chars().count() > MAX_FIELD {
                errors.push(FieldError {
                    field,
                    message: format!("{label} must be {MAX_FIELD} characters or fewer"),
                });
                return None;
            }
            (!v.is_empty()).then(|| v.to_owned())
        };
        let peer = text("peer", &self.peer, "Member");
        let product = text("product", &self.product, "Product");
        let agreement = text("agreement", &self.agreement, "Agreement");
        let purpose = text("purpose", &self.purpose, "Purpose");
        let outcome = text("outcome", &self.outcome, "Outcome");
        let mut date = |field: &'static str, value: &str, label: &str| -> Option<NaiveDate> {
            let v = value.trim();
            if v.is_empty() {
                return None;
            }
            match NaiveDate::parse_from_str(v, "%Y-%m-%d") {
                Ok(d) if (1970..=9999).contains(&chrono::Datelike::year(&d)) => Some(d),
                _ => {
                    errors.push(FieldError {
                        field,
                        message: format!("{label} must be a real date, like 2026-03-31"),
                    });
                    None
                }
            }
        };
        let from = date("from", &self.from, "The first day");
        let until = date("until", &self.until, "The last day");
        if let (Some(f), Some(u)) = (from, until)
            && u < f
        {
            errors.push(FieldError {
                field: "until",
                message: "The last day must be the same as or after the first day".into(),
            });
        }
        let before = match self.before.trim() {
            "" => None,
            b => {
                match b.parse::<u64>() {
                    Ok(n) if n <= 1_000_000_000_000_000 => Some(n),
                    _ => {
                        errors.push(FieldError {
                        field: "kind",
                        message: "That page of entries does not exist; start again from the first page".into(),
                    });
                        None
                    }
                }
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let start = |d: NaiveDate| -> DateTime<Utc> {
            d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()
        };
        Ok(EntryFilter {
            kind,
            peer,
            product,
            agreement,
            purpose,
            outcome,
            from: from.map(start),
            until: until.and_then(|u| u.succ_opt()).map(start),
            reference: None,
            before,
            limit,
        })
    }

    /// The query string of these filters (without the page).
    fn query(&self) -> String {
        [
            ("kind", &self.kind),
            ("peer", &self.peer),
            ("product", &self.product),
            ("agreement", &self.agreement),
            ("purpose", &self.purpose),
            ("outcome", &self.outcome),
            ("from", &self.from),
            ("until", &self.until),
        ]
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| format!("{k}={}", urlencode(v.trim())))
        .collect::<Vec<_>>()
        .join("&")
    }
}

fn frame<'a>(web: &'a Web, viewer: &'a Viewer) -> Frame<'a> {
    Frame {
        organisation: web.node.name(),
        viewer: Some(viewer),
        section: Section::Audit,
    }
}

fn refused() -> Response {
    crate::pages::problem(
        StatusCode::FORBIDDEN,
        "You cannot see this page",
        "The audit pages are for the node's auditors and administrators. Ask an administrator for an auditor's account.",
    )
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%-d %b %Y, %H:%M:%S UTC").to_string()
}

fn text_field(
    f: &AuditForm,
    errors: &[FieldError],
    name: &'static str,
    label: &str,
    hint: &str,
) -> Markup {
    let value = match name {
        "peer" => &f.peer,
        "product" => &f.product,
        "agreement" => &f.agreement,
        "purpose" => &f.purpose,
        _ => &f.outcome,
    };
    html! {
        div class=(field_class(errors, name)) {
            label for=(name) { (label) }
            @if !hint.is_empty() { p.hint id={ (name) "-hint" } { (hint) } }
            (field_message(errors, name))
            input type="text" id=(name) name=(name) value=(value) maxlength="200"
                aria-describedby=[(!hint.is_empty()).then(|| format!("{name}-hint"))];
        }
    }
}

fn filters(f: &AuditForm, errors: &[FieldError]) -> Markup {
    html! {
        form.filters method="get" action="/audit" {
            h2 { "Filter entries" }
            div class=(field_class(errors, "kind")) {
                label for="kind" { "Kind" }
                (field_message(errors, "kind"))
                select id="kind" name="kind" {
                    option value="" selected[f.kind.is_empty()] { "Any" }
                    @for k in AuditKind::ALL {
                        option value=(k.as_str()) selected[f.kind == k.as_str()] { (k.as_str()) }
                    }
                }
            }
            (text_field(f, errors, "peer", "Member", "The other member, for example tax-office"))
            (text_field(f, errors, "product", "Product", "The whole name, for example annual_income"))
            (text_field(f, errors, "agreement", "Agreement", ""))
            (text_field(f, errors, "purpose", "Purpose", "For example fraud_prevention"))
            (text_field(f, errors, "outcome", "Outcome", "The start of it, for example refused"))
            div class=(field_class(errors, "from")) {
                label for="from" { "From (first day)" }
                (field_message(errors, "from"))
                input type="date" id="from" name="from" value=(f.from);
            }
            div class=(field_class(errors, "until")) {
                label for="until" { "Until (last day)" }
                (field_message(errors, "until"))
                input type="date" id="until" name="until" value=(f.until);
            }
            button.button type="submit" { "Filter" }
            a href="/audit" { "Clear filters" }
        }
    }
}

/// The log's size and the latest checkpoint the authority witnessed, in words.
async fn standing(web: &Web) -> Result<Markup, agora_node::NodeError> {
    let (size, _) = web.node.log_head().await?;
    let checkpoint = web.node.latest_checkpoint().await?;
    let witness = web.node.witness_state();
    Ok(html! {
        dl.summary {
            div { dt { "Entries in the log" } dd { (size) } }
            div { dt { "Latest checkpoint" } dd {
                @match &checkpoint {
                    Some(c) => {
                        (c.size) " entries, signed " (when(c.made_at))
                        @if c.witnessed.is_some() { " and witnessed by the authority" }
                    }
                    None => "none yet",
                }
            } }
            @if let Some(why) = &witness.inconsistent {
                div { dt { "Witness" } dd { strong.tag.tag--state { "refused" } " — " (why) } }
            }
        }
    })
}

pub(crate) async fn list(
    State(web): State<Web>,
    viewer: Viewer,
    Query(f): Query<AuditForm>,
) -> Response {
    if !viewer.can(ApiRole::Auditor) {
        return refused();
    }
    let (filter, errors) = match f.filter(PER_PAGE + 1) {
        Ok(filter) => (Some(filter), Vec::new()),
        Err(errors) => (None, errors),
    };
    let mut found = match &filter {
        Some(filter) => match web.node.audit_entries(filter).await {
            Ok(found) => found,
            Err(e) => return crate::pages::node_error(&e),
        },
        None => Vec::new(),
    };
    let more = found.len() > PER_PAGE as usize;
    found.truncate(PER_PAGE as usize);
    let standing = match standing(&web).await {
        Ok(s) => s,
        Err(e) => return crate::pages::node_error(&e),
    };
    let query = f.query();
    let next = found.last().map(|e| {
        format!(
            "/audit?{query}{}before={}",
            if query.is_empty() { "" } else { "&" },
            e.index
        )
    });
    let export = |format: &str| {
        if query.is_empty() {
            format!("/audit/export.{format}")
        } else {
            format!("/audit/export.{format}?{query}")
        }
    };
    let body = html! {
        (error_summary(&errors))
        h1 { "Audit" }
        p.lead { "This node's transparency log: every exchange with another member, every data access by this organisation's people and tools, every policy decision, agreement step, signature and revocation, and every token and user change. No entry can be changed or removed without the authority's witness and " code { "agora audit verify" } " finding out." }
        (standing)
        div.layout {
            (filters(&f, &errors))
            div {
                h2 { "Entries" span.visually-hidden { ", newest first" } }
                @if errors.is_empty() {
                    p {
                        a href=(export("csv")) download="audit-entries.csv" { "Download these entries as CSV" }
                        " or "
                        a href=(export("json")) download="audit-entries.json" { "as JSON" }
                        " (up to " (MAX_EXPORT) ", newest first)"
                    }
                }
                @if found.is_empty() {
                    p { "No entry matches." }
                } @else {
                    (entries_table(&found))
                    @if more && let Some(next) = next {
                        p { a href=(next) { "Older entries" } }
                    }
                }
            }
        }
    };
    crate::layout::form_page(&frame(&web, &viewer), "Audit", &errors, body)
}

fn entries_table(found: &[LoggedEntry]) -> Markup {
    html! {
        div.table-wrap {
            table {
                caption.visually-hidden { "Log entries, newest first" }
                thead { tr {
                    th scope="col" { "Entry" } th scope="col" { "When" } th scope="col" { "Kind" }
                    th scope="col" { "Record" } th scope="col" { "By" } th scope="col" { "Member" } th scope="col" { "Products" }
                    th scope="col" { "Agreement" } th scope="col" { "Purpose" } th scope="col" { "Outcome" }
                } }
                tbody {
                    @for e in found {
                        @let x = &e.entry;
                        tr {
                            th scope="row" { a href={ "/audit/entries/" (e.index) } { (e.index) } }
                            td { (when(x.at)) }
                            td { (x.kind.as_str()) }
                            td { code { (x.reference) } }
                            td { (x.actor) }
                            td { (x.peer.as_deref().unwrap_or("")) }
                            td { (x.product.as_deref().unwrap_or("")) }
                            td { (x.agreement.as_deref().unwrap_or("")) }
                            td { (x.purpose.as_deref().unwrap_or("")) }
                            td {
                                (x.outcome)
                                @if let Some(s) = &x.subjects { " (" (s.count) " people's records)" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The entries a filter selects as CSV, up to [`MAX_EXPORT`].
pub(crate) async fn export_csv(
    State(web): State<Web>,
    viewer: Viewer,
    Query(f): Query<AuditForm>,
) -> Response {
    export(web, viewer, f, "csv").await
}

/// The entries a filter selects as JSON, up to [`MAX_EXPORT`].
pub(crate) async fn export_json(
    State(web): State<Web>,
    viewer: Viewer,
    Query(f): Query<AuditForm>,
) -> Response {
    export(web, viewer, f, "json").await
}

async fn export(web: Web, viewer: Viewer, f: AuditForm, format: &str) -> Response {
    if !viewer.can(ApiRole::Auditor) {
        return refused();
    }
    let filter = match f.filter(MAX_EXPORT) {
        Ok(filter) => filter,
        Err(errors) => {
            let text = errors
                .iter()
                .map(|e| e.message.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            return crate::pages::problem(
                StatusCode::BAD_REQUEST,
                "Those filters do not work",
                &text,
            );
        }
    };
    let found = match web.node.audit_entries(&filter).await {
        Ok(found) => found,
        Err(e) => return crate::pages::node_error(&e),
    };
    if format == "csv" {
        (
            [
                (
                    header::CONTENT_TYPE,
                    "text/csv; charset=utf-8; header=present",
                ),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"audit-entries.csv\"",
                ),
            ],
            agora_model::entries_csv(&found),
        )
            .into_response()
    } else {
        let rows: Vec<serde_json::Value> = found
            .iter()
            .map(|e| serde_json::json!({ "index": e.index, "entry": e.entry }))
            .collect();
        (
            [
                (header::CONTENT_TYPE, "application/json"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"audit-entries.json\"",
                ),
            ],
            serde_json::to_string_pretty(&rows).unwrap_or_default(),
        )
            .into_response()
    }
}

/// Entry `index`'s inclusion proof, or the page that says why there is none.
async fn inclusion(
    web: &Web,
    viewer: &Viewer,
    index: &str,
) -> Result<agora_node::transparency::InclusionProof, Response> {
    if !viewer.can(ApiRole::Auditor) {
        return Err(refused());
    }
    let Ok(index) = index.parse::<u64>() else {
        return Err(crate::not_found_page());
    };
    match web.node.log_inclusion(index).await {
        Ok(p) => Ok(p),
        Err(e) if e.kind() == agora_node::ErrorKind::NotFound => Err(crate::not_found_page()),
        Err(e) => Err(crate::pages::node_error(&e)),
    }
}

/// Entry `index`'s inclusion proof as JSON (the API's form), to check offline.
pub(crate) async fn proof_json(
    State(web): State<Web>,
    viewer: Viewer,
    Path(index): Path<String>,
) -> Response {
    match inclusion(&web, &viewer, &index).await {
        Ok(proof) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"proof.json\"",
                ),
            ],
            serde_json::to_string_pretty(&proof).unwrap_or_default(),
        )
            .into_response(),
        Err(page) => page,
    }
}

/// One entry: what it records, its inclusion proof and the checkpoint it is in.
pub(crate) async fn entry(
    State(web): State<Web>,
    viewer: Viewer,
    Path(index): Path<String>,
) -> Response {
    if !viewer.can(ApiRole::Auditor) {
        return refused();
    }
    let Ok(index) = index.parse::<u64>() else {
        return crate::not_found_page();
    };
    let text = match web.node.log_entry(index).await {
        Ok(Some(text)) => text,
        Ok(None) => return crate::not_found_page(),
        Err(e) => return crate::pages::node_error(&e),
    };
    // No checkpoint holds it yet (an unenrolled node signs none): the entry alone.
    let proof = match web.node.log_inclusion(index).await {
        Ok(p) => Some(p),
        Err(e) if e.kind() == agora_node::ErrorKind::NotFound => None,
        Err(e) => return crate::pages::node_error(&e),
    };
    let entry = agora_model::AuditEntry::decode(text.as_bytes()).ok();
    let pretty = serde_json::from_str::<serde_json::Value>(&text)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| text.clone());
    let title = format!("Log entry {index}");
    let body = html! {
        a href="/audit" { "Back to the audit log" }
        h1 { (title) }
        @if let Some(x) = &entry {
            dl.summary {
                div { dt { "When" } dd { (when(x.at)) } }
                div { dt { "Kind" } dd { (x.kind.as_str()) } }
                div { dt { "Record" } dd { code { (x.reference) } } }
                div { dt { "By" } dd { (x.actor) } }
                @if let Some(p) = &x.peer { div { dt { "Member" } dd { (p) } } }
                @if let Some(p) = &x.product { div { dt { "Products" } dd { (p) } } }
                @if let Some(a) = &x.agreement { div { dt { "Agreements" } dd { (a) } } }
                @if let Some(p) = &x.purpose { div { dt { "Purposes" } dd { (p) } } }
                @if let Some(l) = x.detail.get("legal_basis").and_then(|v| v.as_str()) { div { dt { "Legal bases" } dd { (l) } } }
                div { dt { "Outcome" } dd { (x.outcome) } }
                @if let Some(s) = &x.subjects {
                    div { dt { "People whose records left" } dd { (s.count) " (committed to as " code { (s.root) } "; the log names no one)" } }
                }
            }
        }
        h2 { "The entry as the log holds it" }
        p.hint { "These exact bytes are hashed into the log." }
        pre tabindex="0" role="region" aria-label="The entry's bytes" { (pretty) }
        h2 { "Proof that it is in the log" }
        @if let Some(proof) = &proof {
            p { "Entry " (index) " is in the checkpoint below, of the log's first " (proof.size) " entries. The proof is the hashes that lead from the entry's hash to the checkpoint's root (RFC 6962). Check it yourself with " code { "agora audit verify" } " or by hand as " code { "docs/transparency.md" } " explains." }
            h3 { "Checkpoint" }
            p.hint { "Signed by this node and, once witnessed, cosigned by the ecosystem's authority." }
            pre tabindex="0" role="region" aria-label="The checkpoint" { (proof.checkpoint) }
            h3 { "Inclusion proof" }
            @if proof.proof.is_empty() {
                p { "None needed: the entry is the whole log at that size." }
            } @else {
                ol { @for h in &proof.proof { li { code { (h) } } } }
            }
            p { a href={ "/audit/entries/" (index) "/proof.json" } download={ "proof-" (index) ".json" } { "Download the entry, checkpoint and proof as JSON" } }
        } @else {
            p { "No checkpoint holds this entry yet. The node signs a checkpoint every second once it has joined an ecosystem; until then " code { "agora audit verify --data-dir" } " checks the log against the root its store keeps." }
        }
    };
    Html(crate::layout::page(&frame(&web, &viewer), &title, body).into_string()).into_response()
}
