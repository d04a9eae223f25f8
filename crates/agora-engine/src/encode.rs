//! Streaming result encoders. Each record batch is encoded and handed on as soon as it
//! arrives, so memory use does not grow with the size of the result.

use std::io::Write;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::csv::{Writer as CsvWriter, WriterBuilder as CsvWriterBuilder};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::json::Writer as JsonWriter;
use datafusion::arrow::json::writer::{
    JsonArray, LineDelimited, WriterBuilder as JsonWriterBuilder,
};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::{Stream, StreamExt};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::EngineError;

/// How query results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// A JSON array of row objects.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// CSV with a header line.
    Csv,
    /// The Arrow IPC streaming format.
    ArrowIpc,
    /// A Parquet file (zstd-compressed), written as the result streams: each row group
    /// is sent once it is complete, and the footer at the end.
    Parquet,
}

impl OutputFormat {
    pub const ALL: [OutputFormat; 5] = [
        Self::Json,
        Self::Ndjson,
        Self::Csv,
        Self::ArrowIpc,
        Self::Parquet,
    ];

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Ndjson => "application/x-ndjson",
            Self::Csv => "text/csv; charset=utf-8",
            Self::ArrowIpc => "application/vnd.apache.arrow.stream",
            Self::Parquet => "application/vnd.apache.parquet",
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Ndjson => "ndjson",
            Self::Csv => "csv",
            Self::ArrowIpc => "arrow",
            Self::Parquet => "parquet",
        }
    }
    /// The format for a media type of an `Accept` header, if it names one.
    pub fn from_media_type(m: &str) -> Option<Self> {
        let m = m.split(';').next().unwrap_or("").trim();
        Self::ALL
            .into_iter()
            .find(|f| f.content_type().split(';').next() == Some(m))
    }
}

impl FromStr for OutputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" => Ok(Self::Json),
            "ndjson" | "jsonl" => Ok(Self::Ndjson),
            "csv" => Ok(Self::Csv),
            "arrow" | "arrow-ipc" | "ipc" => Ok(Self::ArrowIpc),
            "parquet" => Ok(Self::Parquet),
            other => Err(format!(
                "unknown result format {other:?}: use json, ndjson, csv, arrow or parquet"
            )),
        }
    }
}

pub type EncodedStream = Pin<Box<dyn Stream<Item = Result<Bytes, EngineError>> + Send>>;

/// A `Write` whose bytes can be taken out between batches.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    fn take(&self) -> Bytes {
        Bytes::from(std::mem::take(&mut *self.0.lock().expect("lock")))
    }
}

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum Encoder {
    Json(JsonWriter<SharedBuf, JsonArray>),
    Ndjson(JsonWriter<SharedBuf, LineDelimited>),
    Csv(Box<CsvWriter<SharedBuf>>),
    Ipc(StreamWriter<SharedBuf>),
    Parquet(Box<ArrowWriter<SharedBuf>>),
}

/// Rows per Parquet row group of a result (also the most a download holds in memory
/// before sending, with [`PARQUET_FLUSH_BYTES`]).
const PARQUET_ROW_GROUP: usize = 256 * 1024;
/// A row group is sent early once its encoded size reaches this.
const PARQUET_FLUSH_BYTES: usize = 32 * 1024 * 1024;

impl Encoder {
    fn new(format: OutputFormat, schema: &SchemaRef, buf: &SharedBuf) -> Result<Self, EngineError> {
        let enc = |e: datafusion::arrow::error::ArrowError| EngineError::Encode(e.to_string());
        Ok(match format {
            OutputFormat::Json => Self::Json(
                JsonWriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build(buf.clone()),
            ),
            OutputFormat::Ndjson => Self::Ndjson(
                JsonWriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build(buf.clone()),
            ),
            OutputFormat::Csv => {
                // CSV holds one plain value per cell: lists, structs and maps do not fit.
                if let Some(f) = schema.fields().iter().find(|f| f.data_type().is_nested()) {
                    return Err(EngineError::Format(format!(
                        "column {:?} holds {} values, which CSV cannot hold; choose json, ndjson, arrow or parquet, or turn the column into text (e.g. with array_to_string)",
                        f.name(),
                        f.data_type()
                    )));
                }
                Self::Csv(Box::new(
                    CsvWriterBuilder::new().with_header(true).build(buf.clone()),
                ))
            }
            OutputFormat::ArrowIpc => {
                Self::Ipc(StreamWriter::try_new(buf.clone(), schema).map_err(enc)?)
            }
            OutputFormat::Parquet => {
                let props = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::default()))
                    .set_max_row_group_row_count(Some(PARQUET_ROW_GROUP))
                    .build();
                Self::Parquet(Box::new(
                    ArrowWriter::try_new(buf.clone(), schema.clone(), Some(props))
                        .map_err(|e| EngineError::Encode(e.to_string()))?,
                ))
            }
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), EngineError> {
        let r = match self {
            Self::Json(w) => w.write(batch),
            Self::Ndjson(w) => w.write(batch),
            Self::Csv(w) => w.write(batch),
            Self::Ipc(w) => w.write(batch),
            Self::Parquet(w) => {
                let pq = |e: parquet::errors::ParquetError| EngineError::Encode(e.to_string());
                w.write(batch).map_err(pq)?;
                if w.in_progress_size() >= PARQUET_FLUSH_BYTES {
                    w.flush().map_err(pq)?;
                }
                return Ok(());
            }
        };
        r.map_err(|e| EngineError::Encode(e.to_string()))
    }

    fn finish(&mut self) -> Result<(), EngineError> {
        let r = match self {
            Self::Json(w) => w.finish(),
            Self::Ndjson(w) => w.finish(),
            Self::Csv(_) => Ok(()),
            Self::Ipc(w) => w.finish(),
            Self::Parquet(w) => {
                return w
                    .finish()
                    .map(|_| ())
                    .map_err(|e| EngineError::Encode(e.to_string()));
            }
        };
        r.map_err(|e| EngineError::Encode(e.to_string()))
    }
}

struct State {
    input: SendableRecordBatchStream,
    buf: SharedBuf,
    encoder: Encoder,
    rows: u64,
    done: bool,
}

pub(crate) fn encode(input: SendableRecordBatchStream, format: OutputFormat) -> EncodedStream {
    let buf = SharedBuf::default();
    let schema = input.schema();
    let encoder = match Encoder::new(format, &schema, &buf) {
        Ok(e) => e,
        Err(e) => return Box::pin(futures::stream::once(async move { Err(e) })),
    };
    let state = State {
        input,
        buf,
        encoder,
        rows: 0,
        done: false,
    };
    Box::pin(futures::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            match st.input.next().await {
                Some(Ok(batch)) => {
                    if batch.num_rows() == 0 {
                        continue;
                    }
                    st.rows += batch.num_rows() as u64;
                    if let Err(e) = st.encoder.write(&batch) {
                        st.done = true;
                        return Some((Err(e), st));
                    }
                    let bytes = st.buf.take();
                    if bytes.is_empty() {
                        continue;
                    }
                    return Some((Ok(bytes), st));
                }
                Some(Err(e)) => {
                    st.done = true;
                    return Some((Err(EngineError::from_df(e)), st));
                }
                None => {
                    st.done = true;
                    // Empty results still need their header / brackets.
                    if st.rows == 0
                        && let Encoder::Csv(w) = &mut st.encoder
                    {
                        let empty = RecordBatch::new_empty(st.input.schema());
                        if let Err(e) = w.write(&empty) {
                            return Some((Err(EngineError::Encode(e.to_string())), st));
                        }
                    }
                    let r = st.encoder.finish().map(|_| st.buf.take());
                    return match r {
                        Ok(b) if b.is_empty() => None,
                        other => Some((other, st)),
                    };
                }
            }
        }
    }))
}

pub(crate) async fn text_table(
    mut input: SendableRecordBatchStream,
    max_rows: usize,
) -> Result<(String, u64), EngineError> {
    let mut kept: Vec<RecordBatch> = Vec::new();
    let mut kept_rows = 0usize;
    let mut total = 0u64;
    while let Some(batch) = input.next().await {
        let batch = batch.map_err(EngineError::from_df)?;
        total += batch.num_rows() as u64;
        if kept_rows < max_rows {
            let take = (max_rows - kept_rows).min(batch.num_rows());
            kept.push(batch.slice(0, take));
            kept_rows += take;
        }
    }
    if kept.is_empty() {
        kept.push(RecordBatch::new_empty(input.schema()));
    }
    let table = pretty_format_batches(&kept)
        .map_err(|e| EngineError::Encode(e.to_string()))?
        .to_string();
    Ok((table, total))
}

/// One page of a result as text cells (`None` for null), for people reading it on a page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextPage {
    pub rows: Vec<Vec<Option<String>>>,
    /// Whether the result has rows after this page.
    pub more: bool,
}

/// Skips `skip` rows, keeps the next `take` as text, and reads one row further to tell
/// whether there are more; the rest of the result is never computed.
pub(crate) async fn text_page(
    mut input: SendableRecordBatchStream,
    skip: usize,
    take: usize,
) -> Result<TextPage, EngineError> {
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    let options = FormatOptions::default().with_null("");
    let mut page = TextPage::default();
    let mut seen = 0usize;
    while let Some(batch) = input.next().await {
        let batch = batch.map_err(EngineError::from_df)?;
        let n = batch.num_rows();
        let start = skip.saturating_sub(seen).min(n);
        seen += n;
        if start == n {
            continue;
        }
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| EngineError::Encode(e.to_string()))?;
        for r in start..n {
            if page.rows.len() == take {
                page.more = true;
                return Ok(page);
            }
            page.rows.push(
                batch
                    .columns()
                    .iter()
                    .zip(&formatters)
                    .map(|(c, f)| (!c.is_null(r)).then(|| f.value(r).to_string()))
                    .collect(),
            );
        }
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_and_map_media_types() {
        assert_eq!("csv".parse::<OutputFormat>().unwrap(), OutputFormat::Csv);
        assert!("xml".parse::<OutputFormat>().is_err());
        assert_eq!(
            OutputFormat::from_media_type("application/vnd.apache.arrow.stream"),
            Some(OutputFormat::ArrowIpc)
        );
        assert_eq!(
            OutputFormat::from_media_type("text/csv"),
            Some(OutputFormat::Csv)
        );
        assert_eq!(OutputFormat::from_media_type("*/*"), None);
        assert_eq!(
            "parquet".parse::<OutputFormat>().unwrap(),
            OutputFormat::Parquet
        );
    }

    #[tokio::test]
    async fn parquet_results_stream_as_a_readable_file() {
        use datafusion::arrow::array::{Int64Array, StringArray};
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("label", DataType::Utf8, true),
        ]));
        let batches: Vec<_> = (0..3)
            .map(|b| {
                Ok(RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(Int64Array::from_iter_values(b * 1000..(b + 1) * 1000)),
                        Arc::new(StringArray::from_iter(
                            (0..1000).map(|i| (i % 7 != 0).then(|| format!("row {i}"))),
                        )),
                    ],
                )
                .unwrap())
            })
            .collect();
        let input = Box::pin(RecordBatchStreamAdapter::new(
            schema.clone(),
            futures::stream::iter(batches),
        ));
        let chunks: Vec<Bytes> = encode(input, OutputFormat::Parquet)
            .map(|c| c.unwrap())
            .collect()
            .await;
        let file: Vec<u8> = chunks.concat();
        assert_eq!(&file[..4], b"PAR1");
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            Bytes::from(file),
        )
        .unwrap()
        .build()
        .unwrap();
        let read: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        let rows: usize = read.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 3000);
        assert_eq!(read[0].schema().fields(), schema.fields());
        let last = read.last().unwrap();
        let n = last
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(n.value(last.num_rows() - 1), 2999);
    }
}
