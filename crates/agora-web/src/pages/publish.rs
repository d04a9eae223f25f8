//! Publishing a data product from the web pages, for stewards: first where the data is,
//! then its metadata and the role of each column — prefilled from the sidecar file next to
//! the data and from the data itself, and checked as registration checks them — and then
//! the profile, whose progress a page of its own shows (refreshing itself: no script).
//!
//! Local files are accepted only under the folders the node's operator allowed for API
//! clients (`agora node start --allow-path DIR`), exactly as for the API.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use agora_model::{
    Classification, ColumnAnnotation, ColumnRole, ColumnSchema, MetadataPatch, PURPOSES,
    SourceFormat, Theme, UpdateFrequency,
};
use agora_node::{ApiRole, NodeError, ProfileProgress, RegisterRequest};
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use crate::Web;
use crate::layout::{
    FieldError, Frame, Section, error_summary, field_class, field_message, form_page, plain_role,
    plain_type, plural,
};
use crate::pages::terms::form_value;
use crate::session::Viewer;

/// Publications kept for their progress pages, at most (the oldest finished go first).
const MAX_JOBS: usize = 64;
/// Publications being profiled at once, at most, per node.
const MAX_RUNNING: usize = 2;

/// One publication being profiled, or done.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    /// The user who started it: only they see its page.
    user: String,
    product: String,
    rows_done: u64,
    rows_total: Option<u64>,
    /// The product's name once registered, or what went wrong.
    outcome: Option<Result<String, String>>,
    started: std::time::Instant,
}

/// The publications of this node's web interface.
#[derive(Clone, Default)]
pub(crate) struct Jobs(Arc<Mutex<HashMap<String, Job>>>);

impl Jobs {
    fn start(&self, user: &str, product: &str) -> Option<String> {
        let mut jobs = self.0.lock().expect("lock");
        if jobs.values().filter(|j| j.outcome.is_none()).count() >= MAX_RUNNING {
            return None;
        }
        while jobs.len() >= MAX_JOBS {
            let oldest = jobs
                .iter()
                .filter(|(_, j)| j.outcome.is_some())
                .min_by_key(|(_, j)| j.started)
                .map(|(id, _)| id.clone())?;
            jobs.remove(&oldest);
        }
        let id = crate::session::random_token()[..32].to_owned();
        jobs.insert(
            id.clone(),
            Job {
                user: user.to_owned(),
                product: product.to_owned(),
                rows_done: 0,
                rows_total: None,
                outcome: None,
                started: std::time::Instant::now(),
            },
        );
        Some(id)
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut Job)) {
        if let Some(j) = self.0.lock().expect("lock").get_mut(id) {
            f(j);
        }
    }

    fn get(&self, id: &str) -> Option<Job> {
        self.0.lock().expect("lock").get(id).cloned()
    }
}

fn frame<'a>(web: &'a Web, viewer: &'a Viewer) -> Frame<'a> {
    Frame {
        organisation: web.node.name(),
        viewer: Some(viewer),
        section: Section::Publish,
    }
}

fn forbidden() -> Response {
    super::problem(
        StatusCode::FORBIDDEN,
        "You cannot do this",
        "Only data stewards publish data products. Ask an administrator of your organisation if you need to.",
    )
}

/// What the two steps' forms hold, as typed (to show again with its errors).
#[derive(Debug, Clone, Default)]
struct PublishInput {
    location: String,
    format: String,
    delimiter: String,
    no_header: bool,
    name: String,
    title: String,
    description: String,
    contact: String,
    classification: String,
    keywords: String,
    themes: Vec<String>,
    purposes: Vec<String>,
    legal_basis: String,
    retention: String,
    update_frequency: String,
    /// Each column's role, by column name.
    roles: BTreeMap<String, String>,
}

impl PublishInput {
    fn from_form(pairs: &[(String, String)]) -> Self {
        let get = |k: &str| form_value(pairs, k);
        let all = |k: &str| -> Vec<String> {
            pairs
                .iter()
                .filter(|(n, _)| n == k)
                .map(|(_, v)| v.trim().to_owned())
                .collect()
        };
        Self {
            location: get("location"),
            format: get("format"),
            delimiter: form_value_raw(pairs, "delimiter"),
            no_header: get("no_header") == "yes",
            name: get("name"),
            title: get("title"),
            description: get("description"),
            contact: get("contact"),
            classification: get("classification"),
            keywords: get("keywords"),
            themes: all("theme"),
            purposes: all("purpose"),
            legal_basis: get("legal_basis"),
            retention: get("retention"),
            update_frequency: get("update_frequency"),
            roles: pairs
                .iter()
                .filter_map(|(n, v)| Some((n.strip_prefix("role:")?.to_owned(), v.clone())))
                .collect(),
        }
    }

    /// The data's location and how to read it (the first step).
    fn request(&self) -> Result<RegisterRequest, Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.location.is_empty() {
            errors.push(error(
                "location",
                "Enter where the data is: a file or folder path, or a URL",
            ));
        }
        let format = match self.format.as_str() {
            "" => None,
            f => match f.parse::<SourceFormat>() {
                Ok(f) => Some(f),
                Err(e) => {
                    errors.push(error("format", e.to_string()));
                    None
                }
            },
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(RegisterRequest {
            location: self.location.clone(),
            name: (!self.name.is_empty()).then(|| self.name.clone()),
            format,
            delimiter: (!self.delimiter.is_empty()).then(|| self.delimiter.clone()),
            has_header: self.no_header.then_some(false),
            metadata: MetadataPatch::default(),
        })
    }

    /// The metadata of the second step, or the fields that are wrong.
    fn patch(&self, schema: &[ColumnSchema]) -> Result<MetadataPatch, Vec<FieldError>> {
        let mut errors = Vec::new();
        let classification = match self.classification.parse::<Classification>() {
            Ok(c) => Some(c),
            Err(_) => {
                errors.push(error("classification", "Choose how the data is classified"));
                None
            }
        };
        let retention = match self.retention.as_str() {
            "" => None,
            r => match r.parse::<agora_model::Retention>() {
                Ok(r) => Some(r),
                Err(e) => {
                    errors.push(error("retention", format!("{e}")));
                    None
                }
            },
        };
        let update_frequency = match self.update_frequency.as_str() {
            "" => None,
            f => f.parse::<UpdateFrequency>().ok(),
        };
        let themes = self
            .themes
            .iter()
            .filter_map(|t| t.parse::<Theme>().ok())
            .collect();
        let mut columns = BTreeMap::new();
        for c in schema {
            let role = match self.roles.get(&c.name).map(String::as_str) {
                None | Some("") => ColumnRole::None,
                Some(r) => r.parse::<ColumnRole>().unwrap_or_default(),
            };
            if role != ColumnRole::None {
                columns.insert(
                    c.name.clone(),
                    ColumnAnnotation {
                        role,
                        description: None,
                    },
                );
            }
        }
        let keywords: Vec<String> = self
            .keywords
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect();
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(MetadataPatch {
            title: Some(self.title.clone()),
            description: Some(self.description.clone()),
            contact: (!self.contact.is_empty()).then(|| self.contact.clone()),
            keywords: Some(keywords),
            themes: Some(themes),
            classification,
            columns: Some(columns),
            legal_basis: (!self.legal_basis.is_empty()).then(|| self.legal_basis.clone()),
            retention,
            update_frequency,
            purposes: Some(self.purposes.clone()),
        })
    }

    /// The second step's fields, prefilled from a draft.
    fn with_draft(mut self, d: &agora_node::Draft) -> Self {
        let m = &d.metadata;
        self.name = d.name.to_string();
        self.title = m.title.clone();
        self.description = m.description.clone();
        self.contact = m.contact.clone().unwrap_or_default();
        self.classification = m.classification.as_str().to_owned();
        self.keywords = m.keywords.join(", ");
        self.themes = m.themes.iter().map(|t| t.code().to_owned()).collect();
        self.purposes = m.purposes.clone();
        self.legal_basis = m.legal_basis.clone().unwrap_or_default();
        self.retention = m
            .retention
            .as_ref()
            .map(|r| r.to_string())
            .unwrap_or_default();
        self.update_frequency = m
            .update_frequency
            .map(|f| f.as_str().to_owned())
            .unwrap_or_default();
        self.roles = d
            .schema
            .iter()
            .map(|c| (c.name.clone(), m.role_of(&c.name).as_str().to_owned()))
            .collect();
        self
    }
}

/// A delimiter is kept as typed (a tab is whitespace).
fn form_value_raw(pairs: &[(String, String)], name: &str) -> String {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn error(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

/// The field a registration error is about.
fn field_of(e: &NodeError) -> &'static str {
    use agora_model::MetadataError as M;
    match e {
        NodeError::Metadata(m) => match m {
            M::EmptyTitle | M::TooLong { field: "title", .. } => "title",
            M::TooLong { .. } => "description",
            M::BadKeyword(_) => "keywords",
            M::UnknownPurpose(_) => "purposes",
            M::MissingLegalBasis(_) => "legal_basis",
            M::UnknownColumn { .. } | M::TypeMismatch { .. } | M::SeveralSubjectIds(_) => "columns",
            _ => "classification",
        },
        NodeError::Id(_) => "name",
        e if e.kind() == agora_node::ErrorKind::AlreadyExists => "name",
        _ => "location",
    }
}

fn respond(
    web: &Web,
    viewer: &Viewer,
    title: &str,
    errors: &[FieldError],
    body: Markup,
) -> Response {
    form_page(&frame(web, viewer), title, errors, body)
}

/// Step 1: where the data is.
fn location_page(
    web: &Web,
    viewer: &Viewer,
    input: &PublishInput,
    errors: &[FieldError],
) -> Response {
    let roots = &web.config.allowed_roots;
    let body = html! {
        (error_summary(errors))
        span.caption { "Publish data · step 1 of 2" }
        h1 { "Where is the data?" }
        p.lead { "Agora reads the data where it is, without copying it. Give a CSV or Parquet file or folder; the next step describes it." }
        @if roots.is_empty() {
            div.notice { p { "This node accepts no local folders from the web pages. Its operator can allow one with " code { "agora node start --allow-path DIR" } "; until then, publish object-store URLs the node allows, or use " code { "agora product add" } "." } }
        } @else {
            div.notice { p { "Local files are accepted from these folders: " @for (i, r) in roots.iter().enumerate() { @if i > 0 { ", " } code { (r.display()) } } "." } }
        }
        form method="post" action="/publish" novalidate {
            input type="hidden" name="csrf" value=(viewer.session.csrf_token);
            input type="hidden" name="step" value="inspect";
            div class=(field_class(errors, "location")) {
                label for="location" { "File, folder or URL" }
                p.hint id="location-hint" { "For example " code { "/srv/data/vacancies.csv" } " or " code { "s3://open-data/vacancies/" } }
                (field_message(errors, "location"))
                input.input--wide type="text" id="location" name="location" value=(input.location) aria-describedby="location-hint" spellcheck="false";
            }
            div class=(field_class(errors, "format")) {
                label for="format" { "Format" }
                (field_message(errors, "format"))
                select id="format" name="format" {
                    option value="" selected[input.format.is_empty()] { "Tell from the file name" }
                    option value="csv" selected[input.format == "csv"] { "CSV" }
                    option value="parquet" selected[input.format == "parquet"] { "Parquet" }
                }
            }
            details.details {
                summary { "CSV options" }
                div.field {
                    label for="delimiter" { "Delimiter" }
                    p.hint id="delimiter-hint" { "The character between values, if not a comma: for example ; or a tab" }
                    input type="text" id="delimiter" name="delimiter" value=(input.delimiter) maxlength="2" aria-describedby="delimiter-hint";
                }
                div.checkbox {
                    input type="checkbox" id="no_header" name="no_header" value="yes" checked[input.no_header];
                    label for="no_header" { "The file has no header line" }
                }
            }
            button.button type="submit" { "Continue" }
        }
    };
    respond(web, viewer, "Where is the data?", errors, body)
}

fn checkbox_list(
    name: &str,
    legend: &str,
    hint: &str,
    options: &[(String, String)],
    chosen: &[String],
) -> Markup {
    html! {
        fieldset.fieldset id=(format!("{name}s")) {
            legend { (legend) }
            p.hint { (hint) }
            div.checkboxes {
                @for (i, (value, label)) in options.iter().enumerate() {
                    @let id = format!("{name}-{i}");
                    div.checkbox {
                        input type="checkbox" id=(id) name=(name) value=(value) checked[chosen.contains(value)];
                        label for=(id) { (label) }
                    }
                }
            }
        }
    }
}

/// Step 2: the metadata and the columns' roles.
fn details_page(
    web: &Web,
    viewer: &Viewer,
    input: &PublishInput,
    draft: &agora_node::Draft,
    errors: &[FieldError],
) -> Response {
    let text = |id: &'static str, label: &str, hint: &str, value: &str| {
        html! {
            div class=(field_class(errors, id)) {
                label for=(id) { (label) }
                @if !hint.is_empty() { p.hint id={ (id) "-hint" } { (hint) } }
                (field_message(errors, id))
                input type="text" id=(id) name=(id) value=(value) aria-describedby=[(!hint.is_empty()).then(|| format!("{id}-hint"))];
            }
        }
    };
    let themes: Vec<(String, String)> = Theme::ALL
        .iter()
        .map(|t| (t.code().to_owned(), t.label().to_owned()))
        .collect();
    let purposes: Vec<(String, String)> = PURPOSES
        .iter()
        .map(|p| (p.to_string(), p.replace('_', " ")))
        .collect();
    let body = html! {
        (error_summary(errors))
        span.caption { "Publish data · step 2 of 2" }
        h1 { "Describe the data" }
        p.lead { "Found " (plural(draft.schema.len() as u64, "column")) " in " code { (draft.source.location) } "."
            @if let Some(s) = &draft.sidecar { " The fields below are filled in from " code { (s) } "." } }
        form method="post" action="/publish" novalidate {
            input type="hidden" name="csrf" value=(viewer.session.csrf_token);
            input type="hidden" name="step" value="publish";
            input type="hidden" name="location" value=(input.location);
            input type="hidden" name="format" value=(input.format);
            input type="hidden" name="delimiter" value=(input.delimiter);
            @if input.no_header { input type="hidden" name="no_header" value="yes"; }
            (text("name", "Name in SQL", "Lower-case letters, digits and underscores; other members query it by this name", &input.name))
            (text("title", "Title", "", &input.title))
            div class=(field_class(errors, "description")) {
                label for="description" { "Description" }
                p.hint id="description-hint" { "What the data holds, where it comes from and what it is good for" }
                (field_message(errors, "description"))
                textarea id="description" name="description" rows="4" aria-describedby="description-hint" { (input.description) }
            }
            (text("contact", "Contact", "Who answers questions about the data, for example data@agency.example", &input.contact))
            div class=(field_class(errors, "classification")) {
                fieldset.fieldset id="classification" {
                    legend { "How is the data classified?" }
                    (field_message(errors, "classification"))
                    div.radios {
                        @for (i, c) in Classification::ALL.iter().enumerate() {
                            @let id = format!("classification-{i}");
                            div.radio {
                                input type="radio" id=(id) name="classification" value=(c.as_str()) checked[input.classification == c.as_str()];
                                label for=(id) { (c.as_str()) " — " (c.meaning()) }
                            }
                        }
                    }
                }
            }
            (text("legal_basis", "Legal basis", "The law under which you hold and share it; required for personal and sensitive data", &input.legal_basis))
            (text("retention", "Retention period", "How long it is kept, as an ISO 8601 duration: P10Y is ten years, P18M eighteen months", &input.retention))
            div.field {
                label for="update_frequency" { "How often it is updated" }
                select id="update_frequency" name="update_frequency" {
                    option value="" selected[input.update_frequency.is_empty()] { "Not stated" }
                    @for f in UpdateFrequency::ALL {
                        option value=(f.as_str()) selected[input.update_frequency == f.as_str()] { (f.as_str()) }
                    }
                }
            }
            (text("keywords", "Keywords", "Separated by commas", &input.keywords))
            (checkbox_list("theme", "Themes", "The DCAT-AP data themes it belongs to", &themes, &input.themes))
            div class=(field_class(errors, "purposes")) {
                (field_message(errors, "purposes"))
                (checkbox_list("purpose", "Purposes other members may ask for it", "None chosen: no member can request it", &purposes, &input.purposes))
            }
            div class=(field_class(errors, "columns")) id="columns" {
                h2 { "Columns" }
                p.hint { "Say which columns identify people. Agora uses the roles to mask them in agreements and to refuse what the policies forbid." }
                (field_message(errors, "columns"))
                div.table-wrap {
                    table {
                        caption.visually-hidden { "The role of each column" }
                        thead { tr { th scope="col" { "Column" } th scope="col" { "Type" } th scope="col" { "Role" } } }
                        tbody {
                            @for (i, c) in draft.schema.iter().enumerate() {
                                @let id = format!("role-{i}");
                                @let current = input.roles.get(&c.name).map(String::as_str).unwrap_or("none");
                                tr {
                                    th scope="row" { label for=(id) { code { (c.name) } } }
                                    td { (plain_type(&c.data_type)) }
                                    td {
                                        select id=(id) name={ "role:" (c.name) } {
                                            @for r in ColumnRole::ALL {
                                                option value=(r.as_str()) selected[current == r.as_str()] { (plain_role(r)) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            button.button type="submit" { "Publish" }
        }
        p { a href="/publish" { "Start again with other data" } }
    };
    respond(web, viewer, "Describe the data", errors, body)
}

pub(crate) async fn start(State(web): State<Web>, viewer: Viewer) -> Response {
    if !viewer.can(ApiRole::Steward) {
        return forbidden();
    }
    location_page(&web, &viewer, &PublishInput::default(), &[])
}

pub(crate) async fn submit(
    State(web): State<Web>,
    viewer: Viewer,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    if let Some(refusal) = viewer.csrf_refusal(&form_value(&pairs, "csrf")) {
        return refusal;
    }
    if !viewer.can(ApiRole::Steward) {
        return forbidden();
    }
    let input = PublishInput::from_form(&pairs);
    let mut request = match input.request() {
        Ok(r) => r,
        Err(errors) => return location_page(&web, &viewer, &input, &errors),
    };
    if let Err(e) =
        agora_node::location::check_client_location(&request.location, &web.config.allowed_roots)
    {
        return location_page(&web, &viewer, &input, &[error("location", e.to_string())]);
    }
    let publish = form_value(&pairs, "step") == "publish";
    // The data as it is, read again at each step: it may have changed meanwhile.
    let base = RegisterRequest {
        name: None,
        ..request.clone()
    };
    let draft = match web.node.draft_registration(&base).await {
        Ok(d) => d,
        Err(e) if e.is_user_error() => {
            return location_page(&web, &viewer, &input, &[error("location", e.to_string())]);
        }
        Err(e) => return super::node_error(&e),
    };
    if !publish {
        let input = input.with_draft(&draft);
        return details_page(&web, &viewer, &input, &draft, &[]);
    }
    request.metadata = match input.patch(&draft.schema) {
        Ok(p) => p,
        Err(errors) => return details_page(&web, &viewer, &input, &draft, &errors),
    };
    if let Err(errors) = check_publication(&web, &request).await {
        return details_page(&web, &viewer, &input, &draft, &errors);
    }
    begin(&web, &viewer, request)
}

/// Everything registration checks before the profile: a free name, metadata that fits the
/// data and the policies' needs.
async fn check_publication(web: &Web, request: &RegisterRequest) -> Result<(), Vec<FieldError>> {
    let as_field = |e: NodeError| vec![error(field_of(&e), e.to_string())];
    let draft = web
        .node
        .draft_registration(request)
        .await
        .map_err(as_field)?;
    if web.node.product(draft.name.as_str()).await.is_ok() {
        return Err(vec![error(
            "name",
            format!(
                "A product named {} exists already: choose another name",
                draft.name
            ),
        )]);
    }
    draft.validate().map_err(as_field)
}

/// Starts the registration (the profile reads all the data) and sends the steward to its
/// progress page.
fn begin(web: &Web, viewer: &Viewer, request: RegisterRequest) -> Response {
    let user = viewer.session.user.username.clone();
    let label = request
        .name
        .clone()
        .unwrap_or_else(|| request.location.clone());
    let Some(id) = web.publishing.start(&user, &label) else {
        return super::problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "The node is busy publishing",
            "Other data is being profiled just now. Try again in a few minutes.",
        );
    };
    let (node, jobs, job) = (web.node.clone(), web.publishing.clone(), id.clone());
    tokio::spawn(async move {
        let progress_jobs = jobs.clone();
        let progress_job = job.clone();
        let progress = move |p: ProfileProgress| {
            progress_jobs.update(&progress_job, |j| {
                j.rows_done = p.rows_done;
                j.rows_total = p.rows_total;
            })
        };
        let outcome = node.register(request, &progress).await;
        if let Ok(p) = &outcome {
            tracing::info!(product = %p.name, user = %user, "data product published from the web interface");
        }
        jobs.update(&job, |j| {
            j.outcome = Some(
                outcome
                    .map(|p| p.name.to_string())
                    .map_err(|e| e.to_string()),
            );
        });
    });
    Redirect::to(&format!("/publish/{id}")).into_response()
}

pub(crate) async fn progress(
    State(web): State<Web>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Response {
    let job = match web.publishing.get(&id) {
        Some(j) if j.user == viewer.session.user.username => j,
        _ => {
            return super::problem(
                StatusCode::NOT_FOUND,
                "Page not found",
                "There is no such publication of yours. It may have finished a while ago: look for the product in the catalog.",
            );
        }
    };
    let member = web.node.member().to_string();
    let (title, body) = match &job.outcome {
        None => (
            "Publishing",
            html! {
                span.caption { "Publish data" }
                h1 { "Publishing " code { (job.product) } }
                p.lead { "Agora is reading the data once to profile it: rows, empty values, distinct values and ranges per column." }
                @match job.rows_total {
                    Some(total) if total > 0 => {
                        label for="progress" { (job.rows_done) " of " (plural(total, "row")) " read" }
                        progress id="progress" max=(total) value=(job.rows_done) { (job.rows_done * 100 / total) " %" }
                    }
                    _ => p role="status" { (plural(job.rows_done, "row")) " read so far" }
                }
                p.hint { "This page refreshes itself every two seconds." }
            },
        ),
        Some(Ok(name)) => (
            "Published",
            html! {
                div.notice.notice--success role="status" {
                    h1 { "Published " code { (name) } }
                    p { "It is in the catalog now, with its profile." }
                }
                p { a href={ "/catalog/" (member) "/" (name) } { "See it in the catalog" } }
                p { a href="/publish" { "Publish other data" } }
            },
        ),
        Some(Err(why)) => (
            "Publishing failed",
            html! {
                h1 { "Publishing failed" }
                p.lead { (why) }
                p { "Nothing was stored. " a href="/publish" { "Start again" } }
            },
        ),
    };
    let mut response = respond(&web, &viewer, title, &[], body);
    if job.outcome.is_none() {
        response.headers_mut().insert(
            axum::http::header::REFRESH,
            axum::http::HeaderValue::from_static("2"),
        );
    }
    response
}
