//! Registration of a data product: resolve, read sidecar, infer, validate, profile, store.

use std::path::{Path, PathBuf};

use agora_model::{DataSource, MetadataPatch, Product, ProductName, Sidecar, SourceFormat};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::{Node, NodeError, ProfileProgress};

/// What to register. Only `location` is required; the rest falls back to the sidecar file
/// next to the data, then to defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// A local path (file or folder) or an object store URL.
    pub location: String,
    /// Product name (also its SQL table name); by default derived from the file name.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub format: Option<SourceFormat>,
    /// CSV delimiter, e.g. ";" or "\t".
    #[serde(default)]
    pub delimiter: Option<String>,
    #[serde(default)]
    pub has_header: Option<bool>,
    /// Metadata given with the request; overrides the sidecar field by field.
    #[serde(default)]
    pub metadata: MetadataPatch,
}

fn bad(path: &str, reason: impl Into<String>) -> NodeError {
    NodeError::BadLocation {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// The sidecar for a local file or folder, if there is one: `(path, text)`.
fn find_sidecar(local: &Path, is_dir: bool) -> Result<Option<(PathBuf, String)>, NodeError> {
    let candidates: Vec<PathBuf> = if is_dir {
        vec![local.join("agora.toml")]
    } else {
        let file_name = local
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let stem = file_name.split('.').next().unwrap_or(file_name);
        vec![
            local.with_file_name(format!("{file_name}.agora.toml")),
            local.with_file_name(format!("{stem}.agora.toml")),
        ]
    };
    for c in candidates {
        match std::fs::read_to_string(&c) {
            Ok(text) => return Ok(Some((c, text))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(bad(
                    &c.display().to_string(),
                    format!("cannot read the sidecar: {e}"),
                ));
            }
        }
    }
    Ok(None)
}

/// Guesses the format of a folder from the files in it.
fn folder_format(dir: &Path) -> Option<SourceFormat> {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .collect();
    names.sort();
    names.iter().find_map(|n| SourceFormat::from_file_name(n))
}

fn default_name(location: &str, local: Option<&Path>) -> String {
    let base = match local {
        Some(p) => p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned(),
        None => location
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned(),
    };
    base.split('.').next().unwrap_or_default().to_owned()
}

fn humanise(name: &str) -> String {
    let s = name.replace('_', " ");
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => s,
    }
}

/// A registration checked up to its profile: where the data is, its format, the name
/// (which may be taken: registration refuses a name in use),
/// the schema the data has, and the metadata the sidecar and the request give (not yet
/// validated against the schema). What a publish form shows before the steward commits.
#[derive(Debug, Clone)]
pub struct Draft {
    pub name: ProductName,
    pub source: DataSource,
    pub schema: Vec<agora_model::ColumnSchema>,
    pub metadata: agora_model::ProductMetadata,
    /// The sidecar file found next to the data, if any.
    pub sidecar: Option<String>,
}

impl Draft {
    /// Checks the metadata against the schema, as registration will.
    pub fn validate(&self) -> Result<(), NodeError> {
        Ok(self.metadata.validate(&self.schema)?)
    }
}

pub(crate) async fn draft(node: &Node, req: &RegisterRequest) -> Result<Draft, NodeError> {
    let resolved =
        crate::location::resolve(&req.location, &node.inner.data_dir, &node.inner.locations)
            .await?;
    let sidecar_found = match &resolved.local {
        Some(p) => find_sidecar(p, resolved.is_dir)?,
        None => None,
    };
    let (sidecar_path, sidecar) = match &sidecar_found {
        Some((p, text)) => {
            let path = p.display().to_string();
            (Some(path.clone()), Sidecar::parse(text, &path)?)
        }
        None => (None, Sidecar::default()),
    };

    // Format: request, sidecar, file extension, folder contents.
    let format = req
        .format
        .or(sidecar.source.format)
        .or_else(|| {
            if resolved.is_dir {
                resolved.local.as_deref().and_then(folder_format)
            } else {
                SourceFormat::from_file_name(&resolved.url)
            }
        })
        .ok_or_else(|| {
            bad(
                &req.location,
                "cannot tell the format from the name: give --format csv or --format parquet",
            )
        })?;
    let mut source = DataSource::new(resolved.url.clone(), format)?;
    if let Some(d) = req
        .delimiter
        .as_deref()
        .or(sidecar.source.delimiter.as_deref())
    {
        source.delimiter = DataSource::parse_delimiter(d)?;
    } else if resolved.url.to_ascii_lowercase().contains(".tsv") {
        source.delimiter = b'\t';
    }
    if let Some(h) = req.has_header.or(sidecar.source.has_header) {
        source.has_header = h;
    }

    let name_str = req
        .name
        .clone()
        .or_else(|| sidecar.name.clone())
        .unwrap_or_else(|| default_name(&req.location, resolved.local.as_deref()));
    let name = if req.name.is_some() || sidecar.name.is_some() {
        ProductName::parse(&name_str)?
    } else {
        ProductName::derive_from(&name_str)?
    };
    let schema = node.engine().inspect(&source).await?;
    if let Some(path) = &sidecar_path {
        sidecar.check_schema(&schema, path)?;
    }
    let mut metadata = sidecar.to_metadata(node.member(), &humanise(name.as_str()));
    metadata.apply(req.metadata.clone());
    if &metadata.owner != node.member() {
        return Err(NodeError::ForeignOwner {
            node: node.member().to_string(),
            given: metadata.owner.to_string(),
        });
    }
    Ok(Draft {
        name,
        source,
        schema,
        metadata,
        sidecar: sidecar_path,
    })
}

pub(crate) async fn register(
    node: &Node,
    req: RegisterRequest,
    progress: &(dyn Fn(ProfileProgress) + Send + Sync),
) -> Result<Product, NodeError> {
    let Draft {
        name,
        source,
        schema,
        metadata,
        ..
    } = draft(node, &req).await?;
    if node.store().get_product(name.as_str()).await?.is_some() {
        return Err(agora_store::StoreError::DuplicateProduct(name.to_string()).into());
    }
    metadata.validate(&schema)?;

    let profile = node.engine().profile(&source, progress).await?;
    let now = Utc::now();
    let product = Product {
        id: uuid_like(),
        name,
        source,
        schema,
        metadata,
        profile,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    node.store().insert_product(&product).await?;
    tracing::info!(
        product = %product.name,
        rows = product.profile.row_count,
        location = %product.source.location,
        "data product registered"
    );
    Ok(product)
}

/// A random 128-bit identifier in hex.
fn uuid_like() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_titles() {
        assert_eq!(default_name("/x/job_seekers.csv.gz", None), "job_seekers");
        assert_eq!(default_name("s3://b/data/income/", None), "income");
        assert_eq!(humanise("annual_income"), "Annual income");
    }

    #[test]
    fn ids_are_unique() {
        let a = uuid_like();
        let b = uuid_like();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
