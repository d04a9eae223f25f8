//! The demo's scenarios, played under real agreements between the running nodes:
//!
//! - **Job matching**: the city hospital asks the employment agency for pseudonymised skill
//!   profiles (purpose `job_matching`); the agency's own rule approves it automatically; the
//!   hospital matches its open vacancies against the profiles; only the agency can turn the
//!   matched pseudonyms back into people to contact.
//! - **Fraud prevention**: the tax office's benefit payments and declared incomes are
//!   linked through pseudonyms under one linkage purpose (`fraud_prevention`) for the
//!   employment agency, which pays unemployment allowances; its steward-approved agreements
//!   show who received unemployment benefit while declaring a high income, without the
//!   agency ever seeing an identifier; the tax office re-identifies the flagged cases.
//!
//! - **Citizen transparency**: a resident whose records both scenarios read asks the
//!   population registry's citizen portal who used their data; every member is asked over
//!   the signed exchange channel, and each answer is checked to be complete against the
//!   member's witnessed log. The demo issues the resident a one-time code to see it in the
//!   browser.
//!
//! Each run reuses the agreements in force from an earlier run.

use std::time::Duration;

use agora_model::{
    AccessMode, AccessRequest, AgreementTerms, ColumnTerm, NegotiationRole, NegotiationState,
    ProductName,
};
use agora_node::Node;
use anyhow::{Context, Result, bail};

/// The employment agency's own policy: the city hospital's job-matching requests for
/// pseudonymised skill profiles are approved without a steward — and only those: the person
/// as a pseudonym, every other column one of the profile's (unmasked or generalised), no
/// unmasked identifier, records or linkage, a year at most.
pub const EMPLOYMENT_AGENCY_POLICY: &str = r#"
@id("employment-agency/hospital-job-matching")
@reason("the city hospital's job-matching requests for pseudonymised skill profiles (the person as a pseudonym; municipality, education, occupation sought, skills and time unemployed) are pre-approved by the agency")
permit (principal == Member::"city-hospital", action == Action::"auto_approve",
        resource == Product::"employment-agency/job_seekers")
when {
  context.purpose == "job_matching" &&
  (context.mode == "records" || context.mode == "linkage") &&
  context.masks.contains("person_id=pseudonym") &&
  !context.unmasked_direct_identifiers &&
  !context.unmasked_sensitive &&
  ["municipality", "education_level", "occupation_sought", "skills", "months_unemployed"].containsAll(context.unmasked_columns) &&
  ["person_id", "municipality", "education_level", "occupation_sought", "skills", "months_unemployed", "registered_on"].containsAll(context.columns) &&
  context.validity_days <= 366
};
"#;

fn find<'a>(nodes: &'a [Node], id: &str) -> Result<&'a Node> {
    nodes
        .iter()
        .find(|n| n.member().as_str() == id)
        .with_context(|| format!("member {id} is not taking part in this run"))
}

fn terms(columns: &str, mode: AccessMode, max_rows: Option<u64>) -> Result<AgreementTerms> {
    Ok(AgreementTerms {
        columns: ColumnTerm::parse_list(columns)?,
        row_filter: None,
        mode,
        min_group_size: agora_model::DEFAULT_MIN_GROUP_SIZE,
        max_rows,
        measures: vec![],
        disclosure: (mode == AccessMode::Aggregate).then(agora_model::DisclosureControl::standard),
        query_limits: Default::default(),
    })
}

/// The consumer's agreement in force for `product` of `owner` and `purpose`, from an
/// earlier run or negotiated now. `approve` is the owner's steward (None: the owner's rules
/// decide).
async fn agreement(
    consumer: &Node,
    owner: &Node,
    product: &str,
    purpose: &str,
    justification: &str,
    terms: AgreementTerms,
    steward_approves: bool,
) -> Result<agora_model::Agreement> {
    let now = chrono::Utc::now();
    for n in consumer
        .negotiations(
            Some(NegotiationRole::Consumer),
            Some(NegotiationState::Finalized),
            1000,
        )
        .await?
    {
        if n.request.owner == *owner.member()
            && n.request.product.as_str() == product
            && n.request.purpose == purpose
            && n.agreement_in_force(now).is_some()
        {
            println!(
                "  {} already holds agreement {} on {}.{product}",
                consumer.member(),
                n.id,
                owner.member()
            );
            return n
                .agreement
                .context("an agreement in force has its document");
        }
    }
    let n = consumer
        .request_access(AccessRequest {
            owner: owner.member().clone(),
            product: ProductName::parse(product)?,
            purpose: purpose.into(),
            // Job seekers agree, when they register, to their profile being matched with
            // vacancies; they may withdraw that consent in the citizen portal.
            legal_basis: if purpose == "job_matching" {
                "consent"
            } else {
                "public_task"
            }
            .into(),
            justification: justification.into(),
            terms,
            valid_from: now,
            valid_until: now + chrono::Duration::days(365),
        })
        .await?;
    println!(
        "  {} requested {}.{product} for {purpose} (negotiation {})",
        consumer.member(),
        owner.member(),
        n.id
    );
    let mut approved = !steward_approves;
    for _ in 0..400 {
        let mine = consumer
            .store()
            .negotiation(&n.id, NegotiationRole::Consumer)
            .await?
            .context("the request vanished")?;
        match mine.state {
            NegotiationState::Finalized => {
                println!(
                    "  agreement {} in force, signed by {} and {}",
                    n.id,
                    owner.member(),
                    consumer.member()
                );
                return mine
                    .agreement
                    .context("an agreement in force has its document");
            }
            NegotiationState::Terminated => bail!(
                "the demo's request for {}.{product} was refused: {}",
                owner.member(),
                mine.reason.unwrap_or_default()
            ),
            _ => {}
        }
        if !approved
            && let Some(theirs) = owner
                .store()
                .negotiation(&n.id, NegotiationRole::Provider)
                .await?
            && theirs.state == NegotiationState::Requested
        {
            owner
                .approve(&n.id, "approved by the demo's data steward")
                .await?;
            println!("  {}'s steward approved it", owner.member());
            approved = true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    bail!(
        "the negotiation {} for {}.{product} did not finish",
        n.id,
        owner.member()
    )
}

/// An answer's columns and rows as text, in column order.
async fn rows(node: &Node, sql: &str) -> Result<(Vec<String>, Vec<Vec<String>>)> {
    use futures::StreamExt;
    let result = node.query(sql).await?;
    let columns: Vec<String> = result.columns.iter().map(|c| c.name.clone()).collect();
    let mut stream = result.encode(agora_node::OutputFormat::Json);
    let mut json = Vec::new();
    while let Some(chunk) = stream.next().await {
        json.extend_from_slice(&chunk?);
    }
    let objects: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_slice(&json)?;
    let rows = objects
        .iter()
        .map(|o| {
            columns
                .iter()
                .map(|c| match o.get(c) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(serde_json::Value::Null) | None => String::new(),
                    Some(v) => v.to_string(),
                })
                .collect()
        })
        .collect();
    Ok((columns, rows))
}

/// A pseudonym (64 hex digits) as shown in the guide: its first 12 digits.
fn short(value: &str) -> String {
    if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        format!("{}…", &value[..12])
    } else {
        value.to_owned()
    }
}

/// Rows as a text table, pseudonyms shortened.
fn render(columns: &[String], rows: &[Vec<String>]) -> String {
    let header: Vec<&str> = columns.iter().map(String::as_str).collect();
    let mut t = crate::output::table(&header);
    for r in rows {
        t.add_row(r.iter().map(|v| short(v)).collect::<Vec<_>>());
    }
    format!(
        "{t}\n({} {})",
        rows.len(),
        if rows.len() == 1 { "row" } else { "rows" }
    )
}

/// The agreement's purpose, legal basis and what it does to each column, in words.
fn describe(a: &agora_model::Agreement) {
    println!(
        "  Purpose: {}. Legal basis: {}. Mode: {}.",
        a.purpose.replace('_', " "),
        a.legal_basis.replace('_', " "),
        a.terms.mode
    );
    println!(
        "  What {} receives of {}.{}:",
        a.consumer, a.owner, a.product
    );
    for c in &a.terms.columns {
        match &c.mask {
            Some(m) => println!("    {:<20} {}", c.name, m.describe()),
            None => println!("    {:<20} as it is", c.name),
        }
    }
    println!("    (no other column)");
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    {l}\n")).collect()
}

/// Plays both scenarios and prints what each party saw.
/// A resident the demo issued a one-time code for, to sign in to the citizen portal.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoCitizen {
    pub portal: String,
    pub person_id: String,
    pub code: String,
}

/// Plays the scenarios; returns the resident of the citizen-transparency scenario.
pub async fn play(nodes: &[Node]) -> Result<Option<DemoCitizen>> {
    let hospital = find(nodes, "city-hospital");
    let agency = find(nodes, "employment-agency");
    let tax = find(nodes, "tax-office");
    println!();
    match (&hospital, &agency) {
        (Ok(hospital), Ok(agency)) => job_matching(hospital, agency).await?,
        (Err(e), _) | (_, Err(e)) => println!("Scenario 1 — job matching: skipped, {e:#}"),
    }
    println!();
    let flagged = match (agency, tax) {
        (Ok(agency), Ok(tax)) => fraud_prevention(agency, tax).await?,
        (Err(e), _) | (_, Err(e)) => {
            println!("Scenario 2 — fraud prevention: skipped, {e:#}");
            Vec::new()
        }
    };
    println!();
    match find(nodes, "population-registry") {
        Ok(registry) if !flagged.is_empty() => {
            Ok(Some(citizen_transparency(nodes, registry, &flagged).await?))
        }
        Ok(_) => {
            println!("Scenario 6 — citizen transparency: skipped, no resident was flagged");
            Ok(None)
        }
        Err(e) => {
            println!("Scenario 6 — citizen transparency: skipped, {e:#}");
            Ok(None)
        }
    }
}

/// How many members' logs hold accesses to the resident's records in `history`.
fn members_with_accesses(history: &agora_node::citizen::CitizenHistory) -> usize {
    history
        .members
        .iter()
        .filter(|m| m.outcome.as_ref().is_ok_and(|h| !h.accesses.is_empty()))
        .count()
}

/// The resident withdraws their consent to job matching through the portal; the hospital's
/// next query no longer reads their profile.
async fn withdraw_job_matching(registry: &Node, hospital: &Node, person: &str) -> Result<()> {
    let sql = "SELECT count(*) FROM \"employment-agency\".job_seekers";
    let before = count(hospital, sql).await?;
    let answers = registry
        .citizen_consent(person, "job_matching", true)
        .await?;
    let applied: Vec<&str> = answers
        .iter()
        .filter(|a| a.outcome == Ok(true))
        .map(|a| a.member.as_str())
        .collect();
    for a in answers.iter().filter(|a| a.outcome.is_err()) {
        println!(
            "    {:<20} could not be asked: {}",
            a.member.as_str(),
            a.outcome.as_ref().unwrap_err()
        );
    }
    let after = count(hospital, sql).await?;
    println!("  The resident withdraws their consent to job matching in the portal. Holding them:");
    println!(
        "  {}. The hospital's next query sees {after} job seekers instead of {before}.",
        if applied.is_empty() {
            "no member".to_owned()
        } else {
            applied.join(", ")
        }
    );
    Ok(())
}

/// The single number a `SELECT count(*)` answers.
async fn count(node: &Node, sql: &str) -> Result<String> {
    let (_, rows) = rows(node, sql).await?;
    rows.first()
        .and_then(|r| r.first())
        .cloned()
        .context("a count answers one row")
}

/// A flagged resident asks the population registry's portal who used their data.
async fn citizen_transparency(
    nodes: &[Node],
    registry: &Node,
    flagged: &[String],
) -> Result<DemoCitizen> {
    println!("Scenario 6 — citizen transparency");
    println!(
        "  A resident whose records the scenarios read asks the population registry's citizen"
    );
    println!("  portal who used their data. The portal asks every member over the signed exchange");
    println!(
        "  channel and checks each answer against the member's witnessed log: every access is"
    );
    println!("  in the log, and the list is complete up to the checkpoint.");
    // The answers' log entries are written as their streams end; each member signs a
    // checkpoint of them and has the authority witness it.
    let mut chosen = None;
    for _ in 0..50 {
        for n in nodes {
            n.checkpoint().await?;
        }
        let mut best = None;
        for person in flagged {
            let h = registry.citizen_history(person).await?;
            let n = members_with_accesses(&h);
            if best.as_ref().is_none_or(|(_, _, m)| n > *m) {
                best = Some((person.clone(), h, n));
            }
        }
        // Both scenarios' owners hold accesses to the best resident once their entries
        // are witnessed.
        if best.as_ref().is_some_and(|(_, _, n)| *n >= 2) {
            chosen = best;
            break;
        }
        chosen = best;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (person, history, _) = chosen.context("no resident to show")?;
    println!("  What the portal shows resident {person}:");
    for m in &history.members {
        match &m.outcome {
            Ok(h) if h.accesses.is_empty() => println!(
                "    {:<20} no access; proven complete up to entry {}",
                m.member.as_str(),
                h.size
            ),
            Ok(h) => {
                println!(
                    "    {:<20} {} access{}; proven complete up to entry {}",
                    m.member.as_str(),
                    h.accesses.len(),
                    if h.accesses.len() == 1 { "" } else { "es" },
                    h.size
                );
                for a in &h.accesses {
                    println!(
                        "      {} read for {} under agreement {}",
                        a.entry.peer.as_deref().unwrap_or("?"),
                        a.entry.purpose.as_deref().unwrap_or("?"),
                        a.entry.agreement.as_deref().map(short).unwrap_or_default()
                    );
                }
            }
            Err(e) => println!("    {:<20} could not be checked: {e}", m.member.as_str()),
        }
    }
    if let Ok(hospital) = find(nodes, "city-hospital") {
        withdraw_job_matching(registry, hospital, &person).await?;
    }
    let code = registry
        .issue_citizen_code(&person, &agora_node::Accessor::command_line())
        .await?;
    Ok(DemoCitizen {
        portal: registry.member().to_string(),
        person_id: person,
        code: code.code,
    })
}

/// The hospital finds job seekers for its vacancies; the agency re-identifies matches.
async fn job_matching(hospital: &Node, agency: &Node) -> Result<()> {
    println!("Scenario 1 — job matching");
    println!("  The city hospital cannot fill its care vacancies and asks the employment agency");
    println!("  for registered job seekers whose skills match, without learning who they are.");
    let a = agreement(
        hospital,
        agency,
        "job_seekers",
        "job_matching",
        "the hospital cannot fill its open nursing and care vacancies and looks for registered job seekers with matching skills",
        terms(
            "person_id=pseudonym,municipality,education_level,occupation_sought,skills,months_unemployed=band:6",
            AccessMode::Records,
            None,
        )?,
        false,
    )
    .await?;
    describe(&a);
    let matches_sql = "SELECT v.vacancy_id, v.occupation, v.municipality, j.person_id AS candidate, j.months_unemployed \
         FROM vacancies v JOIN \"employment-agency\".job_seekers j \
           ON j.occupation_sought = v.occupation AND j.municipality = v.municipality \
         WHERE v.open ORDER BY v.vacancy_id, j.months_unemployed DESC, j.person_id LIMIT 5";
    let (columns, shown) = rows(hospital, matches_sql).await?;
    println!("  What the hospital sees (candidates are pseudonyms, shortened here; its query");
    println!("  results in the API, the web pages and `agora sql` hold them in full):");
    print!("{}", indent(&render(&columns, &shown)));
    // The candidates the hospital saw, in the order it saw them.
    let mut candidates: Vec<String> = Vec::new();
    for r in &shown {
        if !candidates.contains(&r[3]) {
            candidates.push(r[3].clone());
        }
    }
    println!(
        "  What the employment agency sees when it re-identifies those {} candidate{} to contact them:",
        candidates.len(),
        if candidates.len() == 1 { "" } else { "s" }
    );
    for (p, who) in agency.reidentify(&a.id, &candidates).await? {
        println!(
            "    {}  →  person {}",
            short(&p),
            who.as_deref().unwrap_or("(unknown)")
        );
    }
    Ok(())
}

/// The agency links benefits with declared income; the tax office re-identifies.
async fn fraud_prevention(agency: &Node, tax: &Node) -> Result<Vec<String>> {
    println!("Scenario 2 — fraud prevention");
    println!("  The employment agency pays unemployment allowances and asks the tax office for");
    println!("  benefit payments and declared incomes, linked person by person but without names,");
    println!("  to find allowances paid to people who declared a high income the same year.");
    let justification = "linking unemployment benefit payments with declared income to find allowances paid despite high income";
    let benefits = agreement(
        agency,
        tax,
        "benefit_payments",
        "fraud_prevention",
        justification,
        terms(
            "person_id=pseudonym,benefit_type,amount,paid_on=year",
            AccessMode::Linkage,
            None,
        )?,
        true,
    )
    .await?;
    let income = agreement(
        agency,
        tax,
        "annual_income",
        "fraud_prevention",
        justification,
        terms(
            "person_id=pseudonym,tax_year,gross_income",
            AccessMode::Linkage,
            None,
        )?,
        true,
    )
    .await?;
    describe(&benefits);
    describe(&income);
    println!("  Both share pseudonyms of one linkage purpose, so the agency can join them person");
    println!("  by person without seeing who anyone is.");
    let flagged_sql = "SELECT b.person_id, sum(b.amount) AS unemployment_benefit, max(i.gross_income) AS declared_income \
         FROM \"tax-office\".benefit_payments b JOIN \"tax-office\".annual_income i \
           ON i.person_id = b.person_id AND i.tax_year = extract(year FROM b.paid_on) \
         WHERE b.benefit_type = 'unemployment_allowance' \
         GROUP BY b.person_id HAVING max(i.gross_income) > 30000 ORDER BY declared_income DESC LIMIT 5";
    let (columns, shown) = rows(agency, flagged_sql).await?;
    println!("  What the employment agency sees (flagged cases, pseudonyms shortened here):");
    print!("{}", indent(&render(&columns, &shown)));
    let flagged: Vec<String> = shown.iter().map(|r| r[0].clone()).collect();
    println!(
        "  What the tax office sees when it re-identifies the flagged cases for investigation:"
    );
    let mut people = Vec::new();
    for (p, who) in tax.reidentify(&income.id, &flagged).await? {
        println!(
            "    {}  →  person {}",
            short(&p),
            who.as_deref().unwrap_or("(unknown)")
        );
        people.extend(who);
    }
    let agora = crate::demo::agora_command();
    println!("  Neither request reached data without an agreement; every step is in each node's");
    println!("  negotiation history and policy log:");
    println!(
        "    {agora} agreement list --data-dir {}",
        crate::demo::shell_word(&agency.data_dir().display().to_string())
    );
    println!(
        "    {agora} agreement decisions --data-dir {}",
        crate::demo::shell_word(&tax.data_dir().display().to_string())
    );
    Ok(people)
}

/// Writes the employment agency's demo policy into its node's policy directory.
pub fn install_policies(agency_dir: &std::path::Path) -> Result<()> {
    let dir = agency_dir.join(agora_node::POLICY_DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(
        dir.join("demo-auto-approval.cedar"),
        EMPLOYMENT_AGENCY_POLICY,
    )
    .with_context(|| format!("cannot write the demo policy into {}", dir.display()))?;
    Ok(())
}
