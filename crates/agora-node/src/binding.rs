//! Products as the query engine binds them.

use agora_engine::TableBinding;
use agora_model::Product;

/// A product as the engine binds it, readable unless `refusal` says why not.
pub(crate) fn binding_of(p: Product, refusal: Option<String>) -> TableBinding {
    TableBinding {
        name: p.name.to_string(),
        version: format!("{}:{}", p.id, p.version),
        source: p.source,
        schema: p.schema,
        refusal,
        enforcement: None,
    }
}

/// This node's own products, for its own queries.
pub(crate) fn bindings(products: Vec<Product>) -> Vec<TableBinding> {
    products.into_iter().map(|p| binding_of(p, None)).collect()
}
