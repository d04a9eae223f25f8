//! Administration: the node's health, its membership (certificate and trust list), the
//! ecosystem's members as the trust list names them, recent security events and the
//! recent data accesses of the node's own people. Administrators only.

use agora_node::ApiRole;
use agora_node::trust::ListStatus;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::html;

use crate::Web;
use crate::layout::{Frame, Section, page};
use crate::session::Viewer;

fn when(t: DateTime<Utc>) -> String {
    t.format("%-d %B %Y %H:%M UTC").to_string()
}

/// Time left until `t`, in words ("expired" once past).
fn left(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let d = t - now;
    if d.num_seconds() <= 0 {
        "expired".into()
    } else if d.num_days() >= 2 {
        format!("{} days left", d.num_days())
    } else if d.num_hours() >= 2 {
        format!("{} hours left", d.num_hours())
    } else {
        format!("{} minutes left", d.num_minutes().max(1))
    }
}

pub(crate) async fn overview(State(web): State<Web>, viewer: Viewer) -> Response {
    if !viewer.can(ApiRole::Admin) {
        return crate::pages::problem(
            StatusCode::FORBIDDEN,
            "You cannot see this page",
            "Administration is for the node's administrators. Ask one of them if you need something changed.",
        );
    }
    let now = Utc::now();
    let store_ok = web.node.ready().await.is_ok();
    let trust = web.node.trust();
    let events = match web.node.security_events(20).await {
        Ok(e) => e,
        Err(e) => return crate::pages::node_error(&e),
    };
    let accesses = match web.node.accesses(20).await {
        Ok(a) => a,
        Err(e) => return crate::pages::node_error(&e),
    };
    let (log_size, checkpoint) = match (
        web.node.log_head().await,
        web.node.latest_checkpoint().await,
    ) {
        (Ok((size, _)), Ok(c)) => (size, c),
        (Err(e), _) | (_, Err(e)) => return crate::pages::node_error(&e),
    };
    let witness = web.node.witness_state();
    let frame = Frame {
        organisation: web.node.name(),
        viewer: Some(&viewer),
        section: Section::Admin,
    };
    let body = html! {
        h1 { "Administration" }
        h2 { "Node health" }
        dl.summary {
            div { dt { "Member" } dd { (web.node.member()) " — " (web.node.name()) } }
            div { dt { "Metadata store" } dd { strong.tag.tag--state { @if store_ok { "working" } @else { "not answering" } } } }
            div { dt { "Serving other members" } dd {
                @match &trust {
                    Some(t) if !t.status(now).usable() => strong.tag.tag--state { "no: the trust list has expired" },
                    Some(t) if let Some(why) = t.own_standing_problem() => { strong.tag.tag--state { "no" } " — " (why) },
                    Some(_) => strong.tag.tag--state { "yes" },
                    None => strong.tag.tag--state { "no: not enrolled in an ecosystem" },
                }
            } }
        }
        @if let Some(t) = &trust {
            @let m = t.material();
            @let list = t.list();
            h2 { "This node's certificate" }
            dl.summary {
                div { dt { "Ecosystem" } dd { (m.info.ecosystem) } }
                div { dt { "Issued" } dd { (when(m.info.not_before)) } }
                div { dt { "Expires" } dd { (when(m.info.not_after)) " (" (left(m.info.not_after, now)) "; renewed automatically when a third of its life is left)" } }
                div { dt { "Fingerprint" } dd { code { (m.info.fingerprint) } } }
                div { dt { "The ecosystem's root certificate expires" } dd { (when(m.root_info.not_after)) } }
            }
            h2 { "Trust list" }
            dl.summary {
                div { dt { "State" } dd {
                    @match t.status(now) {
                        ListStatus::Valid { sequence, expires_at } => { strong.tag.tag--state { "valid" } " — number " (sequence) ", until " (when(expires_at)) " (" (left(expires_at, now)) ")" }
                        ListStatus::Grace { sequence, expired_at, serving_until } => { strong.tag.tag--state { "expired, in grace" } " — number " (sequence) " expired " (when(expired_at)) "; the node stops serving other members at " (when(serving_until)) " unless a new list arrives" }
                        ListStatus::Expired { sequence, expired_at } => { strong.tag.tag--state { "expired" } " — number " (sequence) " expired " (when(expired_at)) "; the node neither serves nor calls other members" }
                    }
                } }
                div { dt { "Issued by" } dd { (list.authority_url) " at " (when(list.issued_at)) } }
            }
            h2 { "Members" }
            div.table-wrap {
                table {
                    caption.visually-hidden { "Members on the trust list" }
                    thead { tr { th scope="col" { "Member" } th scope="col" { "Organisation" } th scope="col" { "Exchange endpoint" } th scope="col" { "Certificates and when they expire" } } }
                    tbody {
                        @for member in &list.members {
                            tr {
                                th scope="row" { (member.id) }
                                td { (member.name) }
                                td { (member.endpoints.exchange.as_deref().unwrap_or("none")) }
                                td {
                                    @for c in &member.certificates {
                                        div {
                                            @match c.kind {
                                                agora_model::CertificateKind::Node => "Node certificate",
                                                agora_model::CertificateKind::Client => "Tool certificate (Flight SQL, scripts)",
                                            }
                                            ": expires " (when(c.not_after)) " (" (left(c.not_after, now)) ")"
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if !list.revocations.is_empty() {
                h2 { "Revoked certificates" }
                div.table-wrap {
                    table {
                        caption.visually-hidden { "Revoked certificates" }
                        thead { tr { th scope="col" { "Member" } th scope="col" { "Revoked" } th scope="col" { "Reason" } } }
                        tbody {
                            @for r in &list.revocations {
                                tr { th scope="row" { (r.member) } td { (when(r.revoked_at)) } td { (r.reason) } }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Recent security events" }
        @if events.is_empty() {
            p { "No sign-in has been refused." }
        } @else {
            div.table-wrap {
                table {
                    caption.visually-hidden { "The 20 most recent security events" }
                    thead { tr { th scope="col" { "When" } th scope="col" { "What" } th scope="col" { "Account" } th scope="col" { "From" } th scope="col" { "Detail" } } }
                    tbody {
                        @for e in &events {
                            tr { td { (when(e.at)) } td { (e.kind.replace('_', " ")) } td { (e.account) } td { (e.client) } td { (e.detail) } }
                        }
                    }
                }
            }
        }
        h2 { "Transparency log" }
        p.hint { "Every exchange, data access, decision, agreement step and token or user change is an entry; the authority witnesses each checkpoint. Check the whole log with " code { "agora audit verify" } "." }
        dl.summary {
            div { dt { "Entries" } dd { (log_size) } }
            div { dt { "Latest checkpoint" } dd {
                @match &checkpoint {
                    Some(c) => { (c.size) " entries, signed " (when(c.made_at)) }
                    None => "none yet (the node signs one every second once enrolled)",
                }
            } }
            div { dt { "Witnessed by the authority" } dd {
                @if let Some(why) = &witness.inconsistent {
                    strong.tag.tag--state { "refused" } " — " (why)
                } @else if let (Some(n), Some(t)) = (witness.witnessed_size, witness.witnessed_at) {
                    strong.tag.tag--state { "yes" } " — " (n) " entries, " (when(t))
                } @else if checkpoint.as_ref().is_some_and(|c| c.witnessed.is_some()) {
                    strong.tag.tag--state { "yes" }
                } @else {
                    strong.tag.tag--state { "not yet" }
                }
                @if let Some(problem) = &witness.problem {
                    " (last attempt: " (problem) ")"
                }
            } }
        }
        h2 { "Recent data accesses by this organisation" }
        p.hint { "Queries of your own people and tools that read data products. Other members' queries are in the exchange log (" code { "agora node exchanges" } "); the whole access log is in " code { "agora node accesses" } " and " code { "GET /api/v1/accesses" } "." }
        @if accesses.is_empty() {
            p { "No data product has been queried yet." }
        } @else {
            div.table-wrap {
                table {
                    caption.visually-hidden { "The 20 most recent data accesses" }
                    thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "Through" } th scope="col" { "Products" } th scope="col" { "Under agreement" } th.num scope="col" { "Rows" } th scope="col" { "Outcome" } } }
                    tbody {
                        @for a in &accesses {
                            tr {
                                td { (when(a.started_at)) }
                                td { (a.principal) }
                                td { (a.channel) }
                                td { (a.products) }
                                td { @if a.agreements.is_empty() { "none" } @else { (a.agreements) } }
                                td.num { (a.rows_returned) }
                                td { (a.outcome) }
                            }
                        }
                    }
                }
            }
        }
        @if trust.is_none() {
            p { "This node has not joined an ecosystem. Enrol it with " code { "agora node enroll" } " and a token from the ecosystem's authority." }
        }
    };
    Html(page(&frame, "Administration", body).into_string()).into_response()
}
