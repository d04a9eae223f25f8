//! A result stream that reports how it ended: the rows it delivered and whether it was
//! read to the end, failed, or was dropped by its reader — for the access log.

use std::pin::Pin;
use std::task::{Context, Poll};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::error::Result;
use datafusion::physical_plan::{RecordBatchStream, SendableRecordBatchStream};
use futures::Stream;

/// How a result stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// Read to its end.
    Complete { rows: u64 },
    /// Ended by an error, after `rows`.
    Failed { rows: u64, error: String },
    /// Dropped by its reader before the end (a closed connection, a page of a result).
    Dropped { rows: u64 },
}

/// Called once, when the stream ends however it ends.
pub type OnEnd = Box<dyn FnOnce(StreamEnd) + Send>;

pub(crate) struct Observed {
    inner: SendableRecordBatchStream,
    rows: u64,
    on_end: Option<OnEnd>,
}

impl Observed {
    pub(crate) fn new(inner: SendableRecordBatchStream, on_end: OnEnd) -> Self {
        Self {
            inner,
            rows: 0,
            on_end: Some(on_end),
        }
    }

    fn end(&mut self, how: StreamEnd) {
        if let Some(f) = self.on_end.take() {
            f(how);
        }
    }
}

impl Stream for Observed {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.inner.as_mut().poll_next(cx);
        match &next {
            Poll::Ready(Some(Ok(batch))) => self.rows += batch.num_rows() as u64,
            Poll::Ready(Some(Err(e))) => {
                let how = StreamEnd::Failed {
                    rows: self.rows,
                    error: e.to_string(),
                };
                self.end(how);
            }
            Poll::Ready(None) => {
                let how = StreamEnd::Complete { rows: self.rows };
                self.end(how);
            }
            Poll::Pending => {}
        }
        next
    }
}

impl RecordBatchStream for Observed {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

impl Drop for Observed {
    fn drop(&mut self) {
        let how = StreamEnd::Dropped { rows: self.rows };
        self.end(how);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
    use futures::StreamExt;

    use super::*;

    fn stream(batches: Vec<Result<RecordBatch>>) -> SendableRecordBatchStream {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter(batches),
        ))
    }

    fn batch(n: i64) -> Result<RecordBatch> {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        Ok(
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(0..n))])
                .unwrap(),
        )
    }

    fn observed(batches: Vec<Result<RecordBatch>>) -> (Observed, Arc<Mutex<Vec<StreamEnd>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        (
            Observed::new(
                stream(batches),
                Box::new(move |e| s.lock().unwrap().push(e)),
            ),
            seen,
        )
    }

    #[tokio::test]
    async fn a_stream_read_to_its_end_reports_its_rows_once() {
        let (mut o, seen) = observed(vec![batch(3), batch(4)]);
        while o.next().await.is_some() {}
        drop(o);
        assert_eq!(*seen.lock().unwrap(), vec![StreamEnd::Complete { rows: 7 }]);
    }

    #[tokio::test]
    async fn a_stream_dropped_early_reports_what_was_read() {
        let (mut o, seen) = observed(vec![batch(3), batch(4)]);
        o.next().await;
        drop(o);
        assert_eq!(*seen.lock().unwrap(), vec![StreamEnd::Dropped { rows: 3 }]);
    }

    #[tokio::test]
    async fn a_failing_stream_reports_the_error() {
        let err = datafusion::error::DataFusionError::Execution("disk gone".into());
        let (mut o, seen) = observed(vec![batch(2), Err(err)]);
        while o.next().await.is_some() {}
        drop(o);
        let seen = seen.lock().unwrap();
        assert!(
            matches!(&seen[..], [StreamEnd::Failed { rows: 2, error }] if error.contains("disk gone"))
        );
    }
}
