//! Terminal rendering of catalog entries and tokens.

use agora_datagen::GenSummary;
use agora_model::{Page, Product, SearchHit};
use agora_node::TokenInfo;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};

pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.iter().copied());
    t
}

fn page_footer<T>(p: &Page<T>) {
    println!(
        "page {} of {} ({} in all)",
        p.page,
        p.total_pages().max(1),
        p.total
    );
}

pub fn products_table(p: &Page<Product>) {
    let mut t = table(&[
        "name",
        "title",
        "classification",
        "rows",
        "columns",
        "format",
    ]);
    for x in &p.items {
        t.add_row(vec![
            x.name.to_string(),
            x.metadata.title.clone(),
            x.metadata.classification.to_string(),
            x.profile.row_count.to_string(),
            x.schema.len().to_string(),
            x.source.format.to_string(),
        ]);
    }
    println!("{t}");
    page_footer(p);
}

pub fn search_table(p: &Page<SearchHit>) {
    let mut t = table(&[
        "name",
        "title",
        "owner",
        "classification",
        "access",
        "score",
    ]);
    for x in &p.items {
        t.add_row(vec![
            x.name.to_string(),
            x.title.clone(),
            x.owner.clone(),
            x.classification.to_string(),
            x.access.clone().unwrap_or_default(),
            x.score.to_string(),
        ]);
    }
    println!("{t}");
    page_footer(p);
}

pub fn product_details(p: &Product) {
    let m = &p.metadata;
    println!("{} — {}", p.name, m.title);
    if !m.description.is_empty() {
        println!("{}", m.description);
    }
    println!();
    println!("owner:            {}", m.owner);
    println!("classification:   {}", m.classification);
    if let Some(c) = &m.contact {
        println!("contact:          {c}");
    }
    if let Some(l) = &m.legal_basis {
        println!("legal basis:      {l}");
    }
    if let Some(r) = &m.retention {
        println!("retention:        {r}");
    }
    if let Some(f) = &m.update_frequency {
        println!("update frequency: {}", f.as_str());
    }
    if !m.keywords.is_empty() {
        println!("keywords:         {}", m.keywords.join(", "));
    }
    if !m.themes.is_empty() {
        let themes: Vec<&str> = m.themes.iter().map(|t| t.label()).collect();
        println!("themes:           {}", themes.join("; "));
    }
    println!(
        "source:           {} ({})",
        p.source.location, p.source.format
    );
    println!("rows:             {}", p.profile.row_count);
    println!("version:          {} (updated {})", p.version, p.updated_at);
    let mut t = table(&[
        "column",
        "type",
        "role",
        "nulls",
        "distinct ≈",
        "min",
        "max",
    ]);
    for c in &p.schema {
        let prof = p.profile.columns.iter().find(|x| x.name == c.name);
        t.add_row(vec![
            c.name.clone(),
            c.data_type.clone(),
            m.role_of(&c.name).to_string(),
            prof.map(|x| x.null_count.to_string()).unwrap_or_default(),
            prof.map(|x| x.distinct_estimate.to_string())
                .unwrap_or_default(),
            prof.and_then(|x| x.min.clone()).unwrap_or_default(),
            prof.and_then(|x| x.max.clone()).unwrap_or_default(),
        ]);
    }
    println!("{t}");
}

pub fn tokens_table(tokens: &[TokenInfo]) {
    let mut t = table(&["id", "label", "role", "created", "last used", "revoked"]);
    for x in tokens {
        t.add_row(vec![
            x.id.clone(),
            x.label.clone(),
            x.role.to_string(),
            x.created_at.format("%Y-%m-%d %H:%M").to_string(),
            x.last_used_at
                .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_default(),
            x.revoked_at
                .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_default(),
        ]);
    }
    println!("{t}");
}

pub fn users_table(users: &[agora_node::UserInfo]) {
    let mut t = table(&["user", "name", "role", "created", "disabled"]);
    for u in users {
        t.add_row(vec![
            u.username.clone(),
            u.display_name.clone(),
            u.role.to_string(),
            u.created_at.format("%Y-%m-%d %H:%M").to_string(),
            u.disabled_at
                .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_default(),
        ]);
    }
    println!("{t}");
}

pub fn gen_summary(s: &GenSummary) {
    let mut t = table(&["member", "table", "rows"]);
    for x in &s.tables {
        t.add_row(vec![
            x.member.to_owned(),
            x.table.to_owned(),
            x.rows.to_string(),
        ]);
    }
    println!("{t}");
    let secs = s.elapsed.as_secs_f64().max(1e-9);
    println!(
        "{} residents, {} rows in {:.1} s ({:.0} residents/s, seed {})",
        s.residents,
        s.total_rows(),
        secs,
        s.residents as f64 / secs,
        s.seed
    );
}

/// `1 step`, `2 steps`: a count with its noun in the right number.
pub fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
