//! The one page layout, and the components pages share.

use agora_model::Classification;
use maud::{DOCTYPE, Markup, html};

use crate::session::Viewer;

/// The sections of the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    None,
    Catalog,
    Requests,
    Query,
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
        (Section::Requests, "/requests", "Access requests"),
        (Section::Query, "/query", "Query"),
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
                                @if *section != Section::Admin || v.can(agora_node::ApiRole::Admin) {
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
                        p { "Agora node of " (frame.organisation) ". Every access to data is decided by a signed agreement and logged." }
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
    let row = 22.0;
    let label_w = 170.0;
    let bar_w = 260.0;
    let height = row * bars.len() as f64 + 4.0;
    html! {
        svg.chart role="img" aria-labelledby=(id) width=(label_w + bar_w + 90.0) height=(height)
            viewBox={ "0 0 " (label_w + bar_w + 90.0) " " (height) } {
            title id=(id) { (title) }
            @for (i, (label, value, text)) in bars.iter().enumerate() {
                @let y = i as f64 * row + 2.0;
                text x="0" y=(y + 14.0) { (truncate(label, 26)) }
                rect.bar x=(label_w) y=(y + 3.0) width=(bar_w * value.clamp(0.0, 1.0)) height="14" {}
                rect x=(label_w) y=(y + 3.0) width=(bar_w) height="14" fill="none" stroke="#505a5f" {}
                text x=(label_w + bar_w + 6.0) y=(y + 14.0) { (text) }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_have_separators() {
        assert_eq!(number(0), "0");
        assert_eq!(number(1234), "1,234");
        assert_eq!(number(1234567), "1,234,567");
    }
}
