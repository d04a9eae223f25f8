//! The one page layout, and the components pages share.

use agora_model::Classification;
use maud::{DOCTYPE, Markup, html};

use crate::session::Viewer;

/// The sections of the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    None,
    Catalog,
    Publish,
    Requests,
    Query,
    Audit,
    Admin,
}

/// What every page needs to know about where it is.
pub(crate) struct Frame<'a> {
    /// The organisation running the node.
    pub organisation: &'a str,
    pub viewer: Option<&'a Viewer>,
    pub section: Section,
}

/// A whole page: `title` is the page's `<title>` (followed by the service name) and should
/// match its `<h1>`.
pub(crate) fn page(frame: &Frame<'_>, title: &str, body: Markup) -> Markup {
    let nav: &[(Section, &str, &str)] = &[
        (Section::Catalog, "/catalog", "Catalog"),
        (Section::Publish, "/publish", "Publish data"),
        (Section::Requests, "/requests", "Access requests"),
        (Section::Query, "/query", "Query"),
        (Section::Audit, "/audit", "Audit"),
        (Section::Admin, "/admin", "Administration"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " – Agora – " (frame.organisation) }
                link rel="stylesheet" href="/assets/agora.css";
            }
            body {
                a.skip-link href="#main" { "Skip to main content" }
                header.header {
                    div.header__inner {
                        a.header__service href="/" { "Agora" }
                        span.header__member { (frame.organisation) }
                        @if let Some(v) = frame.viewer {
                            span.header__member {
                                "Signed in as " (v.session.user.display_name)
                                " (" (v.role().as_str()) ")"
                            }
                            form.inline-form method="post" action="/sign-out" {
                                input type="hidden" name="csrf" value=(v.session.csrf_token);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                @if let Some(v) = frame.viewer {
                    nav.nav aria-label="Main" {
                        ul {
                            @for (section, href, label) in nav {
                                @if crate::session::role_may_open(v.role(), href)
                                    && (*section != Section::Admin || v.can(agora_node::ApiRole::Admin))
                                    && (*section != Section::Audit || v.can(agora_node::ApiRole::Auditor))
                                    && (*section != Section::Publish || v.can(agora_node::ApiRole::Steward)) {
                                    li {
                                        a href=(href) aria-current=[(frame.section == *section).then_some("page")] { (label) }
                                    }
                                }
                            }
                        }
                    }
                }
                main.main id="main" tabindex="-1" { (body) }
                footer.footer {
                    div.footer__inner {
                        p { "Agora node of " (frame.organisation) ". Other members read its data only under agreements both sides signed; every access to data, theirs and this organisation's own, is logged." }
                    }
                }
            }
        }
    }
}

/// A field's error, for the error summary and the field itself.
#[derive(Debug, Clone)]
pub(crate) struct FieldError {
    /// The `id` of the input it is about.
    pub field: &'static str,
    pub message: String,
}

/// The box at the top of a page that lists a form's errors, each linking to its field.
pub(crate) fn error_summary(errors: &[FieldError]) -> Markup {
    html! {
        @if !errors.is_empty() {
            div.error-summary role="alert" aria-labelledby="error-summary-title" tabindex="-1" {
                h2 id="error-summary-title" { "There is a problem" }
                ul {
                    @for e in errors {
                        li { a href={ "#" (e.field) } { (e.message) } }
                    }
                }
            }
        }
    }
}

/// A page holding a form: with errors, its title starts "Error: " (as screen readers
/// announce it first) and its status is 422.
pub(crate) fn form_page(
    frame: &Frame<'_>,
    title: &str,
    errors: &[FieldError],
    body: Markup,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (status, title) = if errors.is_empty() {
        (axum::http::StatusCode::OK, title.to_owned())
    } else {
        (
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            format!("Error: {title}"),
        )
    };
    (
        status,
        axum::response::Html(page(frame, &title, body).into_string()),
    )
        .into_response()
}

/// A field's class: marked when the field has an error.
pub(crate) fn field_class(errors: &[FieldError], field: &str) -> &'static str {
    if field_error(errors, field).is_some() {
        "field field--error"
    } else {
        "field"
    }
}

/// A field's error message, above its input (nothing when it has none).
pub(crate) fn field_message(errors: &[FieldError], field: &str) -> Markup {
    html! {
        @if let Some(e) = field_error(errors, field) {
            p.field__error { span.visually-hidden { "Error: " } (e.message) }
        }
    }
}

/// The error of one field, if any.
pub(crate) fn field_error<'a>(errors: &'a [FieldError], field: &str) -> Option<&'a FieldError> {
    errors.iter().find(|e| e.field == field)
}

/// A classification as a tag with its word (never colour alone).
pub(crate) fn classification_tag(c: Classification) -> Markup {
    html! {
        strong class={ "tag tag--" (c.as_str()) } { (c.as_str()) }
    }
}

/// A horizontal bar chart as inline SVG: one labelled bar per `(label, value, text)`, where
/// `value` is between 0 and 1 and `text` is what the bar means in words.
pub(crate) fn bar_chart(id: &str, title: &str, bars: &[(String, f64, String)]) -> Markup {
    // Labels at 16 px, the size of the page's own text.
    let row = 28.0;
    let label_w = 230.0;
    let bar_w = 260.0;
    let value_w = 120.0;
    let height = row * bars.len() as f64 + 4.0;
    html! {
        svg.chart.chart--bars role="img" aria-labelledby=(id) width=(label_w + bar_w + value_w) height=(height)
            viewBox={ "0 0 " (label_w + bar_w + value_w) " " (height) } {
            title id=(id) { (title) }
            @for (i, (label, value, text)) in bars.iter().enumerate() {
                @let y = i as f64 * row + 2.0;
                text x="0" y=(y + 18.0) { (truncate(label, 24)) }
                rect.bar x=(label_w) y=(y + 4.0) width=(bar_w * value.clamp(0.0, 1.0)) height="18" {}
                rect x=(label_w) y=(y + 4.0) width=(bar_w) height="18" fill="none" stroke="#505a5f" {}
                text x=(label_w + bar_w + 8.0) y=(y + 18.0) { (text) }
            }
        }
    }
}

/// A small histogram as inline SVG (vertical bars), followed by its counts in a table that
/// opens on request. Withheld counts (`None`) are drawn as a hatched stub and said in words.
pub(crate) fn histogram(id: &str, title: &str, h: &agora_model::Histogram) -> Markup {
    let w = 240.0;
    let ht = 72.0;
    let n = h.bins.len().max(1) as f64;
    let most = h
        .bins
        .iter()
        .filter_map(|b| b.count)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let bar = w / n;
    let name = |i: usize, b: &agora_model::HistogramBin| {
        b.label.clone().unwrap_or_else(|| format!("Bin {}", i + 1))
    };
    html! {
        figure.histogram {
            svg.chart role="img" aria-labelledby=(id) width=(w) height=(ht + 2.0) viewBox={ "0 0 " (w) " " (ht + 2.0) } {
                title id=(id) { (title) }
                @for (i, b) in h.bins.iter().enumerate() {
                    @let x = i as f64 * bar;
                    @match b.count {
                        Some(c) => {
                            @let bh = (c as f64 / most * ht).max(if c > 0 { 1.0 } else { 0.0 });
                            rect.bar x=(x + 1.0) y=(ht - bh) width=((bar - 2.0).max(1.0)) height=(bh) {}
                        }
                        None => {
                            rect.withheld x=(x + 1.0) y=(ht - 6.0) width=((bar - 2.0).max(1.0)) height="6" {}
                        }
                    }
                }
                line x1="0" y1=(ht + 1.0) x2=(w) y2=(ht + 1.0) stroke="#505a5f" {}
            }
            details {
                summary { "Counts" }
                table.compact {
                    caption.visually-hidden { (title) }
                    thead { tr { th scope="col" { @if h.kind == "values" { "Value" } @else { "Range" } } th.num scope="col" { "Rows" } } }
                    tbody {
                        @for (i, b) in h.bins.iter().enumerate() {
                            tr {
                                td { (name(i, b)) }
                                td.num { @match b.count { Some(c) => (number(c)), None => "fewer than 5" } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// A number with thin-space thousands separators.
pub(crate) fn number(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A column's Arrow type in plain words, with the technical name after it, smaller.
pub(crate) fn plain_type(data_type: &str) -> Markup {
    let words = match data_type {
        "Utf8" | "LargeUtf8" | "Utf8View" => "text",
        "Int8" | "Int16" | "Int32" | "Int64" | "UInt8" | "UInt16" | "UInt32" | "UInt64" => {
            "whole number"
        }
        "Float16" | "Float32" | "Float64" => "number",
        "Boolean" => "yes or no",
        "Date32" | "Date64" => "date",
        t if t.starts_with("Decimal") => "decimal number",
        t if t.starts_with("Timestamp") => "date and time",
        t if t.starts_with("List") || t.starts_with("LargeList") => "list",
        _ => "",
    };
    html! {
        @if words.is_empty() { code { (data_type) } }
        @else { (words) " " span.hint.technical { "(" (data_type) ")" } }
    }
}

/// An ISO 8601 duration (a retention period such as `P10Y`) in words, or the text itself
/// when it is not one this can read.
pub(crate) fn plain_duration(iso: &str) -> String {
    let Some(rest) = iso.strip_prefix('P') else {
        return iso.to_owned();
    };
    let mut out = Vec::new();
    let mut number = String::new();
    for c in rest.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'Y' => "year",
            'M' => "month",
            'W' => "week",
            'D' => "day",
            _ => return iso.to_owned(),
        };
        let n: u64 = match number.parse() {
            Ok(n) => n,
            Err(_) => return iso.to_owned(),
        };
        out.push(plural(n, unit));
        number.clear();
    }
    if out.is_empty() || !number.is_empty() {
        return iso.to_owned();
    }
    out.join(" ")
}

/// `1 step`, `2 steps`: a count with its noun in the right number.
pub(crate) fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else if noun.ends_with('y') && !noun.ends_with("ay") {
        format!("{n} {}ies", &noun[..noun.len() - 1])
    } else {
        format!("{n} {noun}s")
    }
}

/// A negotiation's state in plain words (the protocol's name is in the tag's class).
pub(crate) fn plain_state(s: agora_model::NegotiationState) -> &'static str {
    use agora_model::NegotiationState as S;
    match s {
        S::Requested => "requested",
        S::Offered => "other terms offered",
        S::Accepted => "offer accepted",
        S::Agreed => "signed by the owner",
        S::Verified => "signed by both",
        S::Finalized => "agreed",
        S::Terminated => "ended",
    }
}

/// An access mode in plain words, the mode's own name after it.
pub(crate) fn plain_mode(m: agora_model::AccessMode) -> String {
    use agora_model::AccessMode as M;
    let words = match m {
        M::Records => "row by row",
        M::Aggregate => "only as tables of counts and totals",
        M::Linkage => "row by row, people as pseudonyms that link across products",
    };
    format!("{words} ({})", m.as_str())
}

/// A column role in plain words.
pub(crate) fn plain_role(role: agora_model::ColumnRole) -> &'static str {
    use agora_model::ColumnRole as R;
    match role {
        R::SubjectId => "identifies the person (subject identifier)",
        R::DirectIdentifier => "names a person directly (direct identifier)",
        R::QuasiIdentifier => "could single a person out with other data (quasi-identifier)",
        R::Sensitive => "sensitive information",
        R::None => "none of these",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_have_separators() {
        assert_eq!(number(0), "0");
        assert_eq!(number(1234), "1,234");
        assert_eq!(number(1234567), "1,234,567");
    }

    #[test]
    fn durations_and_counts_read_as_words() {
        assert_eq!(plain_duration("P10Y"), "10 years");
        assert_eq!(plain_duration("P1Y6M"), "1 year 6 months");
        assert_eq!(plain_duration("P30D"), "30 days");
        assert_eq!(plain_duration("soon"), "soon");
        assert_eq!(plural(1, "step"), "1 step");
        assert_eq!(plural(3, "step"), "3 steps");
        assert_eq!(plural(2, "policy"), "2 policies");
        assert_eq!(plural(0, "row"), "0 rows");
    }
}
