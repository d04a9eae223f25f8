//! The query workspace: SQL over the node's products and, under agreements, other
//! members', with results in pages and downloads. The SQL travels in the form's body,
//! never in a URL.

use agora_node::OutputFormat;
use axum::Form;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use maud::{Markup, html};
use serde::Deserialize;

use crate::Web;
use crate::layout::{FieldError, Frame, Section, error_summary, field_error, form_page};
use crate::session::Viewer;

/// Rows per page of results.
const PER_PAGE: usize = 50;
/// The longest SQL accepted from the form.
const MAX_SQL: usize = 64 * 1024;

#[derive(Deserialize, Default)]
pub(crate) struct QueryForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    sql: String,
    #[serde(default)]
    page: Option<usize>,
    /// `run` (default), or a download format: `csv`, `parquet`, `json`, `arrow`.
    #[serde(default)]
    action: String,
}

fn frame<'a>(web: &'a Web, viewer: &'a Viewer) -> Frame<'a> {
    Frame {
        organisation: web.node.name(),
        viewer: Some(viewer),
        section: Section::Query,
    }
}

fn agreement_terms(named: &str, a: &agora_model::Agreement) -> Markup {
    let t = &a.terms;
    html! {
        div.notice {
            h3 { code { (named) } " is read under agreement " (a.id) }
            p { "Purpose: " (a.purpose.replace('_', " ")) ". Shared " (crate::layout::plain_mode(t.mode)) "." }
            ul {
                @for c in &t.columns {
                    @if let Some(m) = &c.mask {
                        li { code { (c.name) } " is masked (" (m.label()) ")." }
                    }
                }
                @if let Some(f) = &t.row_filter { li { "Only rows where " code { (f) } " are visible." } }
                @if t.mode == agora_model::AccessMode::Aggregate {
                    li { "Only tables are answered: group and filter by the dimensions, count, and sum or average the measures"
                         @if !t.measures.is_empty() { " (" (t.measures.join(", ")) ")" } "." }
                    li { "Cells of fewer than " (t.min_group_size) " people are left out, and sums dominated by a few people are withheld." }
                    li { "Every figure is perturbed slightly, the same way each time the same cell is asked for." }
                }
                @if let Some(max) = t.max_rows { li { "At most " (max) " rows per query." } }
                @if let Some(s) = t.query_limits.max_seconds { li { "Each query may run for at most " (s) " seconds on the owner's node." } }
                @if let Some(m) = t.query_limits.max_memory_mib { li { "Each query may hold at most " (m) " MiB of memory on the owner's node." } }
                li { "Columns not listed in the agreement cannot be read." }
            }
        }
    }
}

fn render(
    web: &Web,
    viewer: &Viewer,
    sql: &str,
    errors: &[FieldError],
    results: Option<Markup>,
) -> Response {
    let e = field_error(errors, "sql");
    let body = html! {
        (error_summary(errors))
        h1 { "Query data" }
        p.lead { "Write SQL over your own products, and over other members' products as " code { "\"member\".product" } " where they are open or you have an agreement." }
        form method="post" action="/query" {
            input type="hidden" name="csrf" value=(viewer.session.csrf_token);
            div class={ "field" @if e.is_some() { " field--error" } } {
                label for="sql" { "SQL query" }
                p.hint id="sql-hint" { "For example: SELECT municipality, count(*) FROM job_seekers GROUP BY 1" }
                @if let Some(e) = e { p.field__error id="sql-error" { span.visually-hidden { "Error: " } (e.message) } }
                textarea #sql name="sql" rows="8" spellcheck="false"
                    aria-describedby={ "sql-hint" @if e.is_some() { " sql-error" } } { (sql) }
            }
            button.button type="submit" name="action" value="run" { "Run query" }
            button.button.button--secondary type="submit" name="action" value="csv" { "Download CSV" }
            button.button.button--secondary type="submit" name="action" value="parquet" { "Download Parquet" }
            button.button.button--secondary type="submit" name="action" value="json" { "Download JSON" }
            button.button.button--secondary type="submit" name="action" value="arrow" { "Download Arrow" }
        }
        @if let Some(r) = results { (r) }
    };
    form_page(&frame(web, viewer), "Query data", errors, body)
}

pub(crate) async fn form(State(web): State<Web>, viewer: Viewer) -> Response {
    render(&web, &viewer, "", &[], None)
}

/// The SQL's error for the form's one field.
fn sql_error(message: String) -> Vec<FieldError> {
    vec![FieldError {
        field: "sql",
        message,
    }]
}

/// What is wrong with the SQL before it is even planned.
fn check_sql(sql: &str) -> Result<(), Vec<FieldError>> {
    if sql.is_empty() {
        return Err(sql_error("Enter an SQL query".into()));
    }
    if sql.len() > MAX_SQL {
        return Err(sql_error(format!(
            "The query is too long: at most {} KiB",
            MAX_SQL / 1024
        )));
    }
    Ok(())
}

pub(crate) async fn run(
    State(web): State<Web>,
    viewer: Viewer,
    Form(f): Form<QueryForm>,
) -> Response {
    if let Some(r) = viewer.csrf_refusal(&f.csrf) {
        return r;
    }
    let sql = f.sql.trim();
    if let Err(errors) = check_sql(sql) {
        // A query too long to show again is not shown again.
        let shown = if sql.len() > MAX_SQL { "" } else { sql };
        return render(&web, &viewer, shown, &errors, None);
    }
    let Some(current) = crate::pages::page_number(f.page) else {
        return crate::pages::no_such_page();
    };
    let who = agora_node::Accessor::web_user(&viewer.session.user.username);
    let logged = match web.node.query_logged(&who, Some(&viewer.caller), sql).await {
        Ok(r) => r,
        Err(e) if e.is_user_error() => return refused(&web, &viewer, sql, &e),
        Err(e) => return crate::pages::node_error(&e),
    };
    tracing::info!(user = %viewer.session.user.username, action = %f.action, tables = ?logged.products, agreements = %logged.agreement_ids(), "web query");
    let agreements = logged.agreements;
    let notices: Vec<String> = agreements
        .iter()
        .filter_map(|(_, a)| a.disclosure_notice())
        .collect();
    let result = match download(&f.action, logged.result) {
        Ok(response) => return response,
        Err(result) => result,
    };
    let columns = result.columns.clone();
    let rows = match result.text_page((current - 1) * PER_PAGE, PER_PAGE).await {
        Ok(p) => p,
        Err(e) => {
            let e = agora_node::NodeError::from(e);
            if e.is_user_error() {
                return refused(&web, &viewer, sql, &e);
            }
            return crate::pages::node_error(&e);
        }
    };
    let page = ResultPage {
        sql,
        current,
        columns: &columns,
        rows: &rows,
    };
    let results = html! {
        (page.table(&viewer))
        @for n in &notices { div.notice.disclosure-notice { p { (n) } } }
        @if !agreements.is_empty() {
            h2 { "What your agreements hide" }
            @for (named, a) in &agreements { (agreement_terms(named, a)) }
        }
    };
    render(&web, &viewer, sql, &[], Some(results))
}

/// The query page with the error at the SQL; for a product read without an agreement, the
/// link to request one (whether the owner refused when planning or when reading).
fn refused(web: &Web, viewer: &Viewer, sql: &str, e: &agora_node::NodeError) -> Response {
    let request = agora_node::product_needing_agreement(&e.to_string()).map(|(owner, product)| {
        html! {
            div.notice {
                p { "Your organisation holds no agreement for " code { "\"" (owner) "\"." (product) } "." }
                p { a href={ "/catalog/" (owner) "/" (product) "/request" } { "Request access to " (product) " from " (owner) } }
            }
        }
    });
    render(web, viewer, sql, &sql_error(e.to_string()), request)
}

/// The result as a download when one was asked for; otherwise the result back.
fn download(
    action: &str,
    result: agora_node::QueryResult,
) -> Result<Response, agora_node::QueryResult> {
    let (format, ext) = match action {
        "csv" => (OutputFormat::Csv, "csv"),
        "json" => (OutputFormat::Json, "json"),
        "arrow" => (OutputFormat::ArrowIpc, "arrows"),
        "parquet" => (OutputFormat::Parquet, "parquet"),
        _ => return Err(result),
    };
    let stream = result
        .encode(format)
        .map(|chunk| chunk.map_err(|e| std::io::Error::other(e.to_string())));
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"query-result.{ext}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Whether a column holds numbers (shown right-aligned, digits in columns).
fn is_numeric(data_type: &str) -> bool {
    data_type.starts_with("Int")
        || data_type.starts_with("UInt")
        || data_type.starts_with("Float")
        || data_type.starts_with("Decimal")
}

/// One page of a query's rows.
struct ResultPage<'a> {
    sql: &'a str,
    /// The page number, from 1.
    current: usize,
    columns: &'a [agora_model::ColumnSchema],
    rows: &'a agora_node::TextPage,
}

impl ResultPage<'_> {
    /// A button that posts the query again for page `p`.
    fn page_button(&self, viewer: &Viewer, p: usize, label: &str) -> Markup {
        html! {
            form.inline-form method="post" action="/query" {
                input type="hidden" name="csrf" value=(viewer.session.csrf_token);
                input type="hidden" name="sql" value=(self.sql);
                input type="hidden" name="page" value=(p);
                button.button.button--secondary type="submit" name="action" value="run" { (label) }
            }
        }
    }

    fn table(&self, viewer: &Viewer) -> Markup {
        let (current, rows) = (self.current, self.rows);
        let first = (current - 1) * PER_PAGE + 1;
        let last = first + rows.rows.len() - 1;
        html! {
            h2 id="results" { "Results" }
            @if rows.rows.is_empty() {
                p { @if current == 1 { "The query returned no rows." } @else { "No more rows." } }
            } @else {
                p { "Rows " (first) " to " (last) @if rows.more { " (more follow)" } "." }
                div.table-wrap {
                    table aria-labelledby="results" {
                        thead { tr { @for c in self.columns { th scope="col" class=[is_numeric(&c.data_type).then_some("num")] { (c.name) } } } }
                        tbody {
                            @for r in &rows.rows {
                                tr { @for (cell, c) in r.iter().zip(self.columns) {
                                    td class=[is_numeric(&c.data_type).then_some("num")] { @match cell { Some(v) => (v), None => span.hint { "empty" } } }
                                } }
                            }
                        }
                    }
                }
            }
            @if current > 1 || rows.more {
                nav.pagination aria-label="Pages of results" {
                    @if current > 1 { (self.page_button(viewer, current - 1, "Previous page")) }
                    @if rows.more { (self.page_button(viewer, current + 1, "Next page")) }
                }
            }
        }
    }
}
