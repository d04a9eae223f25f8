//! Portable full-text search: a weighted term index in `product_terms`, queried with
//! prefix matches; every query term must match (AND), ranked by the summed field weights.

use std::collections::BTreeMap;

use agora_model::{Offer, Page, PageRequest, Product, SearchHit};
use sqlx::{Any, AnyPool, AssertSqlSafe, Row, Transaction};

use crate::{StoreError, classification, json};

const W_NAME: i64 = 6;
const W_TITLE: i64 = 5;
const W_KEYWORD: i64 = 4;
const W_THEME: i64 = 3;
const W_COLUMN: i64 = 3;
const W_DESCRIPTION: i64 = 1;
const MAX_QUERY_TERMS: usize = 8;

/// Lower-cased alphanumeric words with a light plural folding (`skills` → `skill`).
pub fn tokenize(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| fold(&w.to_lowercase()))
        .collect()
}

fn fold(w: &str) -> String {
    let n = w.chars().count();
    if n > 4 && w.ends_with("ies") {
        format!("{}y", &w[..w.len() - 3])
    } else if n > 3 && w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") {
        w[..w.len() - 1].to_owned()
    } else {
        w.to_owned()
    }
}

fn terms_of(p: &Product) -> BTreeMap<String, i64> {
    terms_of_parts(&p.name, &p.metadata, &p.schema)
}

fn terms_of_parts(
    name: &agora_model::ProductName,
    metadata: &agora_model::ProductMetadata,
    schema: &[agora_model::ColumnSchema],
) -> BTreeMap<String, i64> {
    let mut terms: BTreeMap<String, i64> = BTreeMap::new();
    let mut add = |text: &str, w: i64| {
        for t in tokenize(text) {
            let e = terms.entry(t).or_insert(0);
            *e = (*e).max(w);
        }
    };
    add(name.as_str(), W_NAME);
    add(&metadata.title, W_TITLE);
    for k in &metadata.keywords {
        add(k, W_KEYWORD);
    }
    for t in &metadata.themes {
        add(t.code(), W_THEME);
        add(t.label(), W_THEME);
    }
    for c in schema {
        add(&c.name, W_COLUMN);
    }
    add(&metadata.description, W_DESCRIPTION);
    terms
}

pub(crate) async fn insert_terms(
    tx: &mut Transaction<'_, Any>,
    p: &Product,
) -> Result<(), StoreError> {
    for (term, weight) in terms_of(p) {
        sqlx::query("INSERT INTO product_terms (product_id, term, weight) VALUES ($1, $2, $3)")
            .bind(&p.id)
            .bind(term)
            .bind(weight)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

pub(crate) async fn insert_offer_terms(
    tx: &mut Transaction<'_, Any>,
    offer_id: &str,
    o: &Offer,
) -> Result<(), StoreError> {
    for (term, weight) in terms_of_parts(&o.name, &o.metadata, &o.schema) {
        sqlx::query("INSERT INTO offer_terms (offer_id, term, weight) VALUES ($1, $2, $3)")
            .bind(offer_id)
            .bind(term)
            .bind(weight)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

pub(crate) async fn delete_terms(
    tx: &mut Transaction<'_, Any>,
    product_id: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM product_terms WHERE product_id = $1")
        .bind(product_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// What a search covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchScope {
    /// This node's own products.
    Local,
    /// This node's products and every other member's offers (the federated catalog).
    Ecosystem,
}

/// Narrows a search to one owner and/or one classification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchFilter {
    pub owner: Option<String>,
    pub classification: Option<agora_model::Classification>,
}

pub(crate) async fn search(
    pool: &AnyPool,
    query: &str,
    page: PageRequest,
    scope: SearchScope,
    filter: &SearchFilter,
) -> Result<Page<SearchHit>, StoreError> {
    let (terms_table, entries) = match scope {
        SearchScope::Local => (
            "product_terms",
            "SELECT id, name, title, owner, classification, metadata_json AS doc, CAST(0 AS BIGINT) AS remote FROM products",
        ),
        SearchScope::Ecosystem => (
            "(SELECT product_id, term, weight FROM product_terms \
              UNION ALL SELECT offer_id, term, weight FROM offer_terms)",
            "SELECT id, name, title, owner, classification, metadata_json AS doc, CAST(0 AS BIGINT) AS remote FROM products \
             UNION ALL SELECT id, name, title, member_id, classification, product_json, CAST(1 AS BIGINT) FROM offers",
        ),
    };
    let mut q: Vec<String> = tokenize(query);
    q.sort();
    q.dedup();
    q.truncate(MAX_QUERY_TERMS);
    let n = q.len();
    // The filters apply to the entries, as bound parameters after the terms.
    let mut conditions = Vec::new();
    let mut filter_values = Vec::new();
    if let Some(o) = &filter.owner {
        filter_values.push(o.clone());
        conditions.push(format!("owner = ${}", n + filter_values.len()));
    }
    if let Some(c) = filter.classification {
        filter_values.push(c.as_str().to_owned());
        conditions.push(format!("classification = ${}", n + filter_values.len()));
    }
    let entries = if conditions.is_empty() {
        entries.to_owned()
    } else {
        format!(
            "SELECT * FROM ({entries}) AS f WHERE {}",
            conditions.join(" AND ")
        )
    };
    let f = filter_values.len();

    // One sub-select per query term: the best weight of a matching term per product.
    // With no terms, every product matches with score 0 (plain listing).
    let matches = if q.is_empty() {
        format!("SELECT id AS product_id, CAST(0 AS BIGINT) AS score FROM ({entries}) AS e")
    } else {
        let parts: Vec<String> = (0..q.len())
            .map(|i| {
                format!(
                    "SELECT product_id, MAX(weight) AS w FROM {terms_table} AS t \
                     WHERE term LIKE ${} GROUP BY product_id",
                    i + 1
                )
            })
            .collect();
        format!(
            "SELECT product_id, CAST(SUM(w) AS BIGINT) AS score FROM ({}) AS m GROUP BY product_id HAVING COUNT(*) = {}",
            parts.join(" UNION ALL "),
            q.len()
        )
    };
    let count_sql = format!(
        "SELECT COUNT(*) FROM ({matches}) AS h JOIN ({entries}) AS p ON p.id = h.product_id"
    );
    let page_sql = format!(
        "SELECT p.name, p.title, p.owner, p.classification, p.doc, h.score, p.remote \
         FROM ({matches}) AS h JOIN ({entries}) AS p ON p.id = h.product_id \
         ORDER BY h.score DESC, p.name, p.owner LIMIT ${} OFFSET ${}",
        n + f + 1,
        n + f + 2
    );

    let mut count = sqlx::query(AssertSqlSafe(count_sql));
    for t in &q {
        count = count.bind(format!("{t}%"));
    }
    for v in &filter_values {
        count = count.bind(v.clone());
    }
    let total: i64 = count.fetch_one(pool).await?.try_get(0)?;

    let mut rows = sqlx::query(AssertSqlSafe(page_sql));
    for t in &q {
        rows = rows.bind(format!("{t}%"));
    }
    for v in &filter_values {
        rows = rows.bind(v.clone());
    }
    let rows = rows
        .bind(i64::from(page.per_page))
        .bind(page.offset() as i64)
        .fetch_all(pool)
        .await?;

    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        let name: String = r.try_get(0)?;
        let remote: i64 = r.try_get(6)?;
        let doc: String = r.try_get(4)?;
        let metadata: agora_model::ProductMetadata = if remote == 0 {
            json(&doc, &format!("product {name}"))?
        } else {
            json::<Offer>(&doc, &format!("offer {name}"))?.metadata
        };
        items.push(SearchHit {
            name: agora_model::ProductName::parse(&name).map_err(|e| StoreError::Corrupt {
                what: format!("product {name}"),
                message: e.to_string(),
            })?,
            title: r.try_get(1)?,
            owner: r.try_get(2)?,
            classification: classification(&r.try_get::<String, _>(3)?)?,
            description: metadata.description,
            keywords: metadata.keywords,
            themes: metadata.themes,
            score: r.try_get(5)?,
            access: None,
            agreement: None,
        });
    }
    Ok(Page {
        items,
        page: page.page,
        per_page: page.per_page,
        total: total as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tokenizes_and_folds() {
        assert_eq!(
            tokenize("Job-seekers' Skills, incl. 3 categories!"),
            vec!["job", "seeker", "skill", "incl", "3", "category"]
        );
        assert_eq!(tokenize("Mägi"), vec!["mägi"]);
        assert_eq!(tokenize("status"), vec!["status"]);
    }

    proptest! {
        #[test]
        fn tokens_are_like_safe(s in "\\PC{0,64}") {
            for t in tokenize(&s) {
                prop_assert!(!t.is_empty());
                prop_assert!(!t.contains('%') && !t.contains('_'));
            }
        }
    }
}
