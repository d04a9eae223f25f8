//! The catalog: search every member's offers with filters, and a product's page.

use agora_model::{Classification, ColumnRole, MemberId, Offer, PageRequest, SearchHit, Theme};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use crate::Web;
use crate::layout::{Frame, Section, bar_chart, classification_tag, histogram, number, page};
use crate::session::{Viewer, urlencode};

/// Results per page.
const PER_PAGE: usize = 20;
/// Matches read at a time when a theme filter is checked over them.
const CONSIDERED: u32 = PageRequest::MAX_PER_PAGE;
/// The most pages of matches a theme filter reads (the first 10 000 matches).
const MAX_THEMED_PAGES: u32 = 50;

#[derive(Deserialize, Default)]
pub(crate) struct SearchForm {
    #[serde(default)]
    q: String,
    #[serde(default)]
    member: String,
    #[serde(default)]
    classification: String,
    #[serde(default)]
    theme: String,
    #[serde(default)]
    page: Option<usize>,
}

fn keeps(hit: &SearchHit, f: &SearchForm) -> bool {
    f.theme.is_empty() || hit.themes.iter().any(|t| t.code() == f.theme)
}

fn frame<'a>(web: &'a Web, viewer: &'a Viewer) -> Frame<'a> {
    Frame {
        organisation: web.node.name(),
        viewer: Some(viewer),
        section: Section::Catalog,
    }
}

fn select(name: &str, label: &str, current: &str, options: &[(String, String)]) -> Markup {
    html! {
        div.field {
            label for=(name) { (label) }
            select id=(name) name=(name) {
                option value="" selected[current.is_empty()] { "Any" }
                @for (value, text) in options {
                    option value=(value) selected[current == value] { (text) }
                }
            }
        }
    }
}

pub(crate) async fn search(
    State(web): State<Web>,
    viewer: Viewer,
    Query(f): Query<SearchForm>,
) -> Response {
    // Owner and classification narrow the search in the store; a theme is checked here,
    // over every match of the others.
    let filter = agora_node::SearchFilter {
        owner: (!f.member.is_empty()).then(|| f.member.clone()),
        classification: f.classification.parse::<Classification>().ok(),
    };
    let Some(wanted) = crate::pages::page_number(f.page) else {
        return crate::pages::no_such_page();
    };
    let found = if f.theme.is_empty() {
        search_page(&web, &f, &filter, wanted).await
    } else {
        search_themed(&web, &f, &filter, wanted).await
    };
    let (total, shown) = match found {
        Ok(found) => found,
        Err(e) => return crate::pages::node_error(&e),
    };
    // The members of the ecosystem, from the trust list the node holds (no store read).
    let mut members: Vec<String> = web
        .node
        .trust()
        .map(|t| t.list().members.iter().map(|m| m.id.to_string()).collect())
        .unwrap_or_default();
    members.push(web.node.member().to_string());
    members.sort();
    members.dedup();
    let pages = total.div_ceil(PER_PAGE).max(1);
    let current = wanted.min(pages);
    let link = |p: usize| {
        format!(
            "/catalog?q={}&member={}&classification={}&theme={}&page={p}",
            urlencode(&f.q),
            urlencode(&f.member),
            urlencode(&f.classification),
            urlencode(&f.theme)
        )
    };
    let body = html! {
        h1 { "Find data" }
        p.lead { "Data products offered by every member of the ecosystem. Only descriptions are shown here: data is read under an agreement with its owner." }
        div.layout {
            form.filters method="get" action="/catalog" role="search" aria-label="Catalog" {
                div.field {
                    label for="q" { "Search words" }
                    p.hint id="q-hint" { "For example: income, vacancies, admissions" }
                    input #q type="search" name="q" value=(f.q) aria-describedby="q-hint";
                }
                (select("member", "Member", &f.member, &members.iter().map(|m| (m.clone(), m.clone())).collect::<Vec<_>>()))
                (select("classification", "Classification", &f.classification,
                    &Classification::ALL.iter().map(|c| (c.as_str().to_owned(), c.as_str().to_owned())).collect::<Vec<_>>()))
                (select("theme", "Theme", &f.theme,
                    &Theme::ALL.iter().map(|t| (t.code().to_owned(), t.label().to_owned())).collect::<Vec<_>>()))
                button.button type="submit" { "Search" }
            }
            div {
                h2 id="results" { (total) @if total == 1 { " product" } @else { " products" } }
                @if total == 0 {
                    p { "No product matches. Try fewer or other words, or remove a filter." }
                }
                ul.results aria-labelledby="results" {
                    @for h in shown {
                        li {
                            h2 { a href={ "/catalog/" (h.owner) "/" (h.name) } { (h.title) } }
                            p { (classification_tag(h.classification)) " " (h.owner) " · " code { (h.name) } }
                            @if !h.description.is_empty() { p { (h.description) } }
                            p.meta { (access_line(&web, &h)) }
                        }
                    }
                }
                @if pages > 1 {
                    nav.pagination aria-label="Pages of results" {
                        @if current > 1 { a href=(link(current - 1)) rel="prev" { "Previous page" } }
                        span { "Page " (current) " of " (pages) }
                        @if current < pages { a href=(link(current + 1)) rel="next" { "Next page" } }
                    }
                }
            }
        }
    };
    Html(page(&frame(&web, &viewer), "Find data", body).into_string()).into_response()
}

/// What this organisation can do with a catalog entry, with the link that does it.
fn access_line(web: &Web, h: &SearchHit) -> Markup {
    html! {
        @if h.owner == web.node.member().as_str() {
            "Your own product: query it as " code { (h.name) } "."
        } @else if !h.classification.needs_agreement() {
            "Open: query it as " code { "\"" (h.owner) "\"." (h.name) } "."
        } @else if let Some(id) = &h.agreement {
            "Your organisation reads it under "
            a href={ "/requests/" (id) "?side=consumer" } { "agreement " (id) }
            ": query it as " code { "\"" (h.owner) "\"." (h.name) } "."
        } @else {
            "Needs an agreement with " (h.owner) ", which your organisation does not hold: "
            a href={ "/catalog/" (h.owner) "/" (h.name) "/request" } { "request access" } "."
        }
    }
}

/// One page of the matches (a page past the end shows the last one), with their total.
async fn search_page(
    web: &Web,
    f: &SearchForm,
    filter: &agora_node::SearchFilter,
    wanted: usize,
) -> Result<(usize, Vec<SearchHit>), agora_node::NodeError> {
    let mut page = wanted;
    loop {
        let request = PageRequest {
            page: page as u32,
            per_page: PER_PAGE as u32,
        };
        let hits = web
            .node
            .search_ecosystem_filtered(&f.q, request, filter)
            .await?;
        let total = hits.total as usize;
        let last = total.div_ceil(PER_PAGE).max(1);
        if hits.items.is_empty() && page > last {
            page = last;
            continue;
        }
        return Ok((total, hits.items));
    }
}

/// One page of the matches of the chosen theme, found among the first
/// `MAX_THEMED_PAGES` pages of the others, with their total.
async fn search_themed(
    web: &Web,
    f: &SearchForm,
    filter: &agora_node::SearchFilter,
    wanted: usize,
) -> Result<(usize, Vec<SearchHit>), agora_node::NodeError> {
    let mut kept = Vec::new();
    for page in 1..=MAX_THEMED_PAGES {
        let request = PageRequest {
            page,
            per_page: CONSIDERED,
        };
        let hits = web
            .node
            .search_ecosystem_filtered(&f.q, request, filter)
            .await?;
        let last = (page as u64) * u64::from(CONSIDERED) >= hits.total;
        kept.extend(hits.items.into_iter().filter(|h| keeps(h, f)));
        if last {
            break;
        }
    }
    let total = kept.len();
    let shown = kept
        .into_iter()
        .skip((wanted - 1) * PER_PAGE)
        .take(PER_PAGE)
        .collect();
    Ok((total, shown))
}

/// A product's page: what it holds, its columns and their roles, its quality profile, and
/// how to use it.
pub(crate) async fn product(
    State(web): State<Web>,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
) -> Response {
    let Ok(member) = MemberId::parse(&owner) else {
        return product_not_found();
    };
    let mine = &member == web.node.member();
    let offer = match product_offer(&web, &member, &name).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    // This organisation's requests for the product, newest first, and the agreement in
    // force it reads the product under (signatures checked), if any.
    let (requests, held) = if mine {
        (Vec::new(), None)
    } else {
        let held = web
            .node
            .agreements_in_force(agora_model::NegotiationRole::Consumer)
            .await
            .map(|mut all| all.remove(&(offer.owner.clone(), offer.name.to_string())));
        match (own_requests(&web, &offer).await, held) {
            (Ok(r), Ok(h)) => (r, h),
            (Err(e), _) | (_, Err(e)) => return crate::pages::node_error(&e),
        }
    };
    // Who reads an own product, under which agreements in force (signatures checked).
    let readers: Vec<agora_model::Agreement> = if mine {
        match web
            .node
            .agreements_in_force(agora_model::NegotiationRole::Provider)
            .await
        {
            Ok(all) => all
                .into_values()
                .filter_map(|n| n.agreement)
                .filter(|a| a.product == offer.name)
                .collect(),
            Err(e) => return crate::pages::node_error(&e),
        }
    } else {
        Vec::new()
    };
    let m = &offer.metadata;
    let body = html! {
        span.caption { (offer.owner) }
        h1 { (m.title) }
        p { (classification_tag(m.classification)) }
        @if !m.description.is_empty() { p.lead { (m.description) } }
        (how_to_use(&offer, mine, held.as_ref(), &requests))
        @if mine && m.classification.needs_agreement() {
            h2 { "Who reads it" }
            @if readers.is_empty() {
                p { "No other member reads it under an agreement in force." }
            } @else {
                ul {
                    @for a in &readers {
                        li { (a.consumer) ", for " (a.purpose.replace('_', " ")) ", until " (a.valid_until.format("%-d %B %Y")) ": "
                            a href={ "/requests/" (a.id) "?side=provider" } { "agreement " (a.id) } }
                    }
                }
            }
        }
        (about_product(&offer))
        (columns_table(&offer))
        (quality_profile(&offer, mine))
    };
    Html(page(&frame(&web, &viewer), &m.title, body).into_string()).into_response()
}

fn product_not_found() -> Response {
    crate::pages::problem(
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is no such data product in the catalog. It may have been withdrawn; search the catalog again.",
    )
}

/// The product as this node sees it: its own, or another member's offer.
async fn product_offer(web: &Web, member: &MemberId, name: &str) -> Result<Offer, Response> {
    if member == web.node.member() {
        return match web.node.product(name).await {
            Ok(p) => Ok(p.offer()),
            Err(e) if e.is_user_error() => Err(product_not_found()),
            Err(e) => Err(crate::pages::node_error(&e)),
        };
    }
    match web.node.offer(member, name).await {
        Ok(Some(o)) => Ok(o),
        Ok(None) => Err(product_not_found()),
        Err(e) => Err(crate::pages::node_error(&e)),
    }
}

/// This organisation's latest requests for another member's product.
async fn own_requests(
    web: &Web,
    offer: &Offer,
) -> Result<Vec<agora_model::Negotiation>, agora_node::NodeError> {
    let all = web
        .node
        .negotiations(Some(agora_model::NegotiationRole::Consumer), None, 1000)
        .await?;
    Ok(all
        .into_iter()
        .filter(|n| n.request.owner == offer.owner && n.request.product == offer.name)
        .take(5)
        .collect())
}

fn how_to_use(
    offer: &Offer,
    mine: bool,
    held: Option<&agora_model::Negotiation>,
    requests: &[agora_model::Negotiation],
) -> Markup {
    let m = &offer.metadata;
    html! {
    h2 { "How to use it" }
    @if mine {
        p { "This is one of your own products. Query it in the " a href="/query" { "query workspace" } " as " code { (offer.name) } "." }
    } @else if !m.classification.needs_agreement() {
        p { "It is open: any member may query it as " code { "\"" (offer.owner) "\"." (offer.name) } " in the " a href="/query" { "query workspace" } "." }
    } @else if let Some(n) = held {
        @let a = n.agreement.as_ref().expect("an agreement in force has its document");
        div.notice {
            p { "Your organisation reads it under " a href={ "/requests/" (n.id) "?side=consumer" } { "agreement " (n.id) }
                ", for " (a.purpose.replace('_', " ")) ", until " (a.valid_until.format("%-d %B %Y")) "." }
            p { "Query it in the " a href="/query" { "query workspace" } " as " code { "\"" (offer.owner) "\"." (offer.name) } "; the agreement's terms decide which columns and rows you see." }
        }
    } @else {
        p { "It is classified " (m.classification.as_str()) ": you can read it only under a sharing agreement with " (offer.owner) ", for a purpose it admits. Your organisation holds none in force." }
        @if !requests.is_empty() {
            div.notice {
                h3 { "Your organisation's requests for it" }
                ul {
                    @for n in requests {
                        li {
                            a href={ "/requests/" (n.id) "?side=consumer" } { "Request of " (n.created_at.format("%-d %B %Y")) }
                            " for " (n.request.purpose.replace('_', " ")) ": "
                            strong { (crate::layout::plain_state(n.state)) }
                            @if n.agreement_in_force(chrono::Utc::now()).is_some() { " (in force)" }
                        }
                    }
                }
            }
        }
        p { a.button href={ "/catalog/" (offer.owner) "/" (offer.name) "/request" } { "Request access" } }
        p.hint { "Your request names the purpose, the columns and how they are masked; " (offer.owner) " approves it, offers other terms or rejects it. Follow it under " a href="/requests" { "Access requests" } "." }
    }
    }
}

fn about_product(offer: &Offer) -> Markup {
    let m = &offer.metadata;
    let rows = offer.profile.row_count;
    html! {
    h2 { "About this product" }
    dl.summary {
        div { dt { "Owner" } dd { (offer.owner) } }
        div { dt { "Name in SQL" } dd { code { (offer.name) } } }
        div { dt { "Themes" } dd { @for (i, t) in m.themes.iter().enumerate() { @if i > 0 { ", " } (t.label()) } @if m.themes.is_empty() { "None given" } } }
        div { dt { "Keywords" } dd { @if m.keywords.is_empty() { "None given" } @else { (m.keywords.join(", ")) } } }
        div { dt { "Purposes it admits" } dd { @if m.purposes.is_empty() { "None listed" } @else { (m.purposes.join(", ")) } } }
        div { dt { "Legal basis" } dd { (m.legal_basis.as_deref().unwrap_or("None given")) } }
        div { dt { "Retention" } dd { @match &m.retention { Some(r) => { (crate::layout::plain_duration(&r.to_string())) " " span.hint.technical { "(" (r) ")" } }, None => "None given" } } }
        div { dt { "Updated" } dd { @match m.update_frequency { Some(u) => (u.as_str()), None => "Not stated" } } }
        div { dt { "Contact" } dd { (m.contact.as_deref().unwrap_or("None given")) } }
        div { dt { "Rows" } dd { (number(rows)) } }
    }
    }
}

fn columns_table(offer: &Offer) -> Markup {
    let m = &offer.metadata;
    let role_of = |col: &str| {
        m.columns
            .get(col)
            .map(|a| a.role)
            .unwrap_or(ColumnRole::None)
    };
    html! {
    h2 { "Columns" }
    div.table-wrap {
        table {
            caption.visually-hidden { "Columns of " (m.title) }
            thead { tr { th scope="col" { "Column" } th scope="col" { "Type" } th scope="col" { "Role" } th scope="col" { "Description" } } }
            tbody {
                @for c in &offer.schema {
                    tr {
                        th scope="row" { code { (c.name) } }
                        td { (crate::layout::plain_type(&c.data_type)) }
                        td { (crate::layout::plain_role(role_of(&c.name))) }
                        td { (m.columns.get(&c.name).and_then(|a| a.description.as_deref()).unwrap_or("")) }
                    }
                }
            }
        }
    }
    }
}

/// One bar of a chart: its label, its length (0 to 1) and the words for its value.
type Bar = (String, f64, String);

/// The share of rows with a value, and the distinct values (log scale), per column.
fn profile_bars(offer: &Offer) -> (Vec<Bar>, Vec<Bar>) {
    let rows = offer.profile.row_count;
    let columns = &offer.profile.columns;
    let completeness = columns
        .iter()
        .map(|c| {
            let filled = rows.saturating_sub(c.null_count);
            let share = if rows == 0 {
                0.0
            } else {
                filled as f64 / rows as f64
            };
            (
                c.name.clone(),
                share,
                format!("{:.1}% filled", share * 100.0),
            )
        })
        .collect();
    let max_distinct = columns
        .iter()
        .map(|c| c.distinct_estimate)
        .max()
        .unwrap_or(0)
        .max(1);
    let distinct = columns
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                (c.distinct_estimate as f64).ln_1p() / (max_distinct as f64).ln_1p(),
                format!("≈ {}", number(c.distinct_estimate)),
            )
        })
        .collect();
    (completeness, distinct)
}

fn quality_profile(offer: &Offer, mine: bool) -> Markup {
    let m = &offer.metadata;
    let rows = offer.profile.row_count;
    let (completeness, distinct) = profile_bars(offer);
    html! {
    h2 { "Quality profile" }
    p { "Measured on " (offer.profile.computed_at.format("%-d %B %Y")) " over " (number(rows)) " rows." }
    h3 { "How complete each column is" }
    (bar_chart("chart-completeness", "Share of rows with a value, per column", &completeness))
    h3 { "Distinct values per column" }
    (bar_chart("chart-distinct", "Approximate number of distinct values per column (logarithmic)", &distinct))
    @if offer.profile.columns.iter().any(|c| c.histogram.is_some()) {
        h3 { "How the values spread" }
        @if m.classification.needs_agreement() && !mine {
            p.hint { "Only the shape is shown for data that is not open: ranges and values are left out, and counts below 5 are withheld." }
        }
        div.histograms {
            @for (i, c) in offer.profile.columns.iter().enumerate() {
                @if let Some(h) = &c.histogram {
                    div.histograms__item {
                        h4 { code { (c.name) } }
                        (histogram(&format!("hist-{i}"), &format!("Spread of the values of {}", c.name), h))
                    }
                }
            }
        }
    }
    div.table-wrap {
        table {
            caption { "Profile per column" }
            thead { tr { th scope="col" { "Column" } th.num scope="col" { "Empty" } th.num scope="col" { "Distinct (approx.)" } th scope="col" { "Smallest" } th scope="col" { "Largest" } } }
            tbody {
                @for c in &offer.profile.columns {
                    tr {
                        th scope="row" { code { (c.name) } }
                        td.num { (number(c.null_count)) }
                        td.num { (number(c.distinct_estimate)) }
                        td { (c.min.as_deref().unwrap_or("not shown")) }
                        td { (c.max.as_deref().unwrap_or("not shown")) }
                    }
                }
            }
        }
    }
    @if m.classification.needs_agreement() {
        p.hint { "Smallest and largest values of non-open products are not shown: they can be personal data." }
    }
    }
}
