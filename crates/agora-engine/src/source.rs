//! Data sources as DataFusion listing tables.

use std::sync::Arc;

use agora_model::{ColumnSchema, DataSource, SourceFormat};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::catalog::TableProvider;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::session_state::SessionState;
use url::Url;

use crate::EngineError;

/// Rows read to infer a CSV schema.
const CSV_INFER_ROWS: usize = 10_000;

fn source_error(source: &DataSource, e: impl std::fmt::Display) -> EngineError {
    EngineError::Source {
        location: display_location(&source.location),
        message: crate::tidy(&e.to_string()),
    }
}

/// `file:///a/b.csv` is shown as `/a/b.csv`.
pub fn display_location(location: &str) -> String {
    location
        .strip_prefix("file://")
        .unwrap_or(location)
        .to_owned()
}

fn compression_of(location: &str) -> FileCompressionType {
    let l = location.to_ascii_lowercase();
    if l.ends_with(".gz") {
        FileCompressionType::GZIP
    } else if l.ends_with(".bz2") {
        FileCompressionType::BZIP2
    } else if l.ends_with(".xz") {
        FileCompressionType::XZ
    } else if l.ends_with(".zst") {
        FileCompressionType::ZSTD
    } else {
        FileCompressionType::UNCOMPRESSED
    }
}

/// Registers the object store for a non-local URL with the session's runtime, configured
/// from the environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`).
fn ensure_object_store(state: &SessionState, source: &DataSource) -> Result<(), EngineError> {
    if source.is_local() {
        return Ok(());
    }
    let url = Url::parse(&source.location).map_err(|e| source_error(source, e))?;
    let base = ObjectStoreUrl::parse(format!("{}://{}", url.scheme(), url.authority()))
        .map_err(|e| source_error(source, e))?;
    let runtime = state.runtime_env();
    if runtime.object_store(&base).is_ok() {
        return Ok(());
    }
    let mut opts: Vec<(String, String)> = std::env::vars()
        .filter_map(|(k, v)| {
            let lk = k.to_ascii_lowercase();
            (lk.starts_with("aws_") || lk.starts_with("google_") || lk.starts_with("azure_"))
                .then_some((lk, v))
        })
        .collect();
    if url.scheme() == "http" {
        // The steward named a plain-HTTP location explicitly.
        opts.push(("allow_http".to_owned(), "true".to_owned()));
    }
    let (store, _) =
        object_store::parse_url_opts(&url, opts).map_err(|e| source_error(source, e))?;
    runtime.register_object_store(base.as_ref(), Arc::from(store));
    Ok(())
}

/// Checks every uncompressed file of a CSV source with [`crate::csvcheck`]: quoted fields
/// closed, every line as wide as the first. Run at registration (it reads the files
/// whole); compressed files are left to the reader.
pub async fn check_csv_shape(state: &SessionState, source: &DataSource) -> Result<(), EngineError> {
    use futures::{StreamExt, TryStreamExt};
    use object_store::ObjectStoreExt;
    if source.format != SourceFormat::Csv {
        return Ok(());
    }
    ensure_object_store(state, source)?;
    let table_url =
        ListingTableUrl::parse(&source.location).map_err(|e| source_error(source, e))?;
    let ext = if table_url.is_collection() {
        ".csv"
    } else {
        ""
    };
    let store = state
        .runtime_env()
        .object_store(&table_url)
        .map_err(|e| source_error(source, e))?;
    let files = table_url
        .list_all_files(state, store.as_ref(), ext)
        .await
        .map_err(|e| source_error(source, e))?
        .try_collect::<Vec<_>>()
        .await
        .map_err(|e| source_error(source, e))?;
    let several = files.len() > 1;
    let mut rows = 0u64;
    let mut unchecked = false;
    for f in files {
        if compression_of(f.location.as_ref()) != FileCompressionType::UNCOMPRESSED {
            unchecked = true;
            continue;
        }
        let in_file = |m: String| {
            let name = f.location.filename().unwrap_or_default();
            source_error(source, if several { format!("{name}: {m}") } else { m })
        };
        let mut shape = crate::csvcheck::CsvShape::new(source.delimiter);
        let mut bytes = store
            .get(&f.location)
            .await
            .map_err(|e| source_error(source, e))?
            .into_stream();
        while let Some(chunk) = bytes.next().await {
            shape
                .feed(&chunk.map_err(|e| source_error(source, e))?)
                .map_err(in_file)?;
        }
        shape.finish().map_err(in_file)?;
        rows += shape.records().saturating_sub(u64::from(source.has_header));
    }
    if rows == 0 && !unchecked {
        return Err(source_error(
            source,
            if source.has_header {
                "the data holds a header line and no rows: column types cannot be told from names alone — register it once it has rows"
            } else {
                "the data holds no rows: register it once it has some"
            },
        ));
    }
    Ok(())
}

/// Builds a listing table over the source, inferring its schema from the data.
pub async fn listing_table(
    state: &SessionState,
    source: &DataSource,
) -> Result<Arc<dyn TableProvider>, EngineError> {
    ensure_object_store(state, source)?;
    let table_url =
        ListingTableUrl::parse(&source.location).map_err(|e| source_error(source, e))?;
    let is_dir = table_url.is_collection();
    let compression = if is_dir {
        FileCompressionType::UNCOMPRESSED
    } else {
        compression_of(&source.location)
    };
    let (format, ext): (Arc<dyn FileFormat>, String) = match source.format {
        SourceFormat::Csv => (
            Arc::new(
                CsvFormat::default()
                    .with_delimiter(source.delimiter)
                    .with_has_header(source.has_header)
                    .with_schema_infer_max_rec(CSV_INFER_ROWS)
                    .with_file_compression_type(compression),
            ),
            if is_dir {
                ".csv".to_owned()
            } else {
                // A single file is taken whatever its extension (.csv, .tsv, .txt).
                String::new()
            },
        ),
        SourceFormat::Parquet => (
            Arc::new(ParquetFormat::default()),
            if is_dir {
                ".parquet".to_owned()
            } else {
                String::new()
            },
        ),
    };
    let options = ListingOptions::new(format).with_file_extension(ext);
    // Fail early, with a clear message, when there is nothing to read.
    let store = state
        .runtime_env()
        .object_store(&table_url)
        .map_err(|e| source_error(source, e))?;
    let files = {
        use futures::TryStreamExt;
        table_url
            .list_all_files(state, store.as_ref(), &options.file_extension)
            .await
            .map_err(|e| source_error(source, e))?
            .try_collect::<Vec<_>>()
            .await
            .map_err(|e| source_error(source, e))?
    };
    if files.is_empty() {
        return Err(source_error(
            source,
            format!(
                "no {} files found{}",
                source.format,
                if is_dir { " in this folder" } else { "" }
            ),
        ));
    }
    let config = ListingTableConfig::new(table_url)
        .with_listing_options(options)
        .infer_schema(state)
        .await
        .map_err(|e| source_error(source, e.find_root()))?;
    // Share the runtime's file-statistics cache (keyed by path, size and modification
    // time, so a changed file is read again): without it every query re-derives the
    // statistics of every file from the Parquet footers.
    let table = ListingTable::try_new(config)
        .map_err(|e| source_error(source, e))?
        .with_cache(state.runtime_env().cache_manager.get_file_statistic_cache());
    if table.schema().fields().is_empty() {
        return Err(source_error(source, "the data has no columns"));
    }
    Ok(Arc::new(table))
}

/// The logical type name shown to people: view and large variants of strings and binaries
/// are physical choices of the reader, not properties of the data.
pub fn type_name(t: &DataType) -> String {
    match t {
        DataType::Utf8View | DataType::LargeUtf8 => "Utf8".to_owned(),
        DataType::BinaryView | DataType::LargeBinary => "Binary".to_owned(),
        other => other.to_string(),
    }
}

/// Column descriptions of an Arrow schema.
pub fn columns(schema: &Schema) -> Vec<ColumnSchema> {
    schema
        .fields()
        .iter()
        .map(|f| ColumnSchema::new(f.name(), type_name(f.data_type()), f.is_nullable()))
        .collect()
}

/// Compares the registered schema with the one found in the data now.
pub fn check_drift(
    product: &str,
    source: &DataSource,
    registered: &[ColumnSchema],
    found: &[ColumnSchema],
) -> Result<(), EngineError> {
    let drift = |detail: String| EngineError::SchemaDrift {
        product: product.to_owned(),
        location: display_location(&source.location),
        detail,
    };
    for r in registered {
        match found.iter().find(|f| f.name == r.name) {
            None => return Err(drift(format!("column {:?} is missing", r.name))),
            Some(f) if f.data_type != r.data_type => {
                return Err(drift(format!(
                    "column {:?} is now {} instead of {}",
                    r.name, f.data_type, r.data_type
                )));
            }
            _ => {}
        }
    }
    if let Some(extra) = found
        .iter()
        .find(|f| !registered.iter().any(|r| r.name == f.name))
    {
        return Err(drift(format!("column {:?} is new", extra.name)));
    }
    Ok(())
}
