//! `PayloadExec`: a scan's `input`/`output` from the run-order columns of
//! layout-2 parts.
//!
//! Below it, the parts are scanned without their texts, with each row's
//! run-order position ([`super::ROW`]) and its part's id (a partition
//! column, [`PART`]); the scan's filters on other columns have already
//! dropped what they drop. This node takes the rows a part yields, up to
//! [`GATHER_ROWS`] at a time, reads the texts at their positions in one
//! pass over the part ([`super::gather`]: only the pages holding them) and
//! emits the rows with the texts in their columns, in the table's projected
//! schema. A part's rows arrive together (a scan partition reads its files
//! one after another), so most parts cost one pass.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, RecordBatchOptions, UInt64Array};
use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::cache::cache_manager::FileMetadataCache;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
};
use futures::{StreamExt, TryStreamExt};

use crate::part_file::PartFile;
use crate::parts::Part;

/// The partition column naming each row's part (its id).
pub(crate) const PART: &str = "_part";

/// Rows gathered in one pass: a part's texts are read once per this many of
/// its rows (a whole-part scan of 256k rows reads them four times), and
/// what is held meanwhile stays bounded.
const GATHER_ROWS: usize = 64 * 1024;

/// Where an output column comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source {
    /// The input batch's column at this index.
    Input(usize),
    /// The gathered text of this model column (`input`, `output`).
    Text(&'static str),
}

/// What the node needs to fill a part's rows.
struct Fill {
    schema: SchemaRef,
    sources: Vec<Source>,
    texts: Vec<&'static str>,
    part_column: usize,
    parts: HashMap<u64, (Arc<Part>, PathBuf)>,
    /// The metadata cache the scan below reads footers from: the parts'
    /// metadata is taken from it rather than parsed a second time.
    cache: Arc<FileMetadataCache>,
}

impl fmt::Debug for Fill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fill")
            .field("texts", &self.texts)
            .field("parts", &self.parts.len())
            .finish_non_exhaustive()
    }
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct PayloadExec {
    input: Arc<dyn ExecutionPlan>,
    fill: Arc<Fill>,
    properties: Arc<PlanProperties>,
}

impl PayloadExec {
    /// Over `input` (a scan whose batches carry [`PART`] at `part_column`
    /// and [`super::ROW`]), yielding `schema` column by
    /// column from `sources`; `parts` are the scanned parts with the local
    /// path of each file; `cache` is the scan's metadata cache.
    pub(crate) fn new(
        input: Arc<dyn ExecutionPlan>,
        schema: SchemaRef,
        sources: Vec<Source>,
        part_column: usize,
        parts: Vec<(Arc<Part>, PathBuf)>,
        cache: Arc<FileMetadataCache>,
    ) -> Self {
        let mut texts: Vec<&'static str> = sources
            .iter()
            .filter_map(|s| match s {
                Source::Text(t) => Some(*t),
                Source::Input(_) => None,
            })
            .collect();
        texts.sort_unstable();
        texts.dedup();
        let properties = properties_of(&schema, &input);
        Self {
            input,
            fill: Arc::new(Fill {
                schema,
                sources,
                texts,
                part_column,
                parts: parts
                    .into_iter()
                    .map(|(p, path)| (p.meta.id, (p, path)))
                    .collect(),
                cache,
            }),
            properties,
        }
    }
}

/// The node's properties over `input`: `schema`, the input's partitions,
/// batches as they come.
fn properties_of(schema: &SchemaRef, input: &Arc<dyn ExecutionPlan>) -> Arc<PlanProperties> {
    Arc::new(PlanProperties::new(
        EquivalenceProperties::new(schema.clone()),
        input.output_partitioning().clone(),
        EmissionType::Incremental,
        Boundedness::Bounded,
    ))
}

impl DisplayAs for PayloadExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "PayloadExec: texts={:?}", self.fill.texts)
    }
}

impl ExecutionPlan for PayloadExec {
    fn name(&self) -> &str {
        "PayloadExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Internal(format!(
                "PayloadExec takes one child, got {}",
                children.len()
            )));
        }
        let input = children.swap_remove(0);
        let properties = properties_of(&self.fill.schema, &input);
        Ok(Arc::new(Self {
            input,
            fill: self.fill.clone(),
            properties,
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let feed = Feed {
            input: self.input.execute(partition, context)?,
            held: Vec::new(),
            part: None,
            rows: 0,
            ended: false,
        };
        let fill = self.fill.clone();
        let stream = futures::stream::try_unfold(feed, move |mut feed| {
            let fill = fill.clone();
            async move {
                let Some((part, batches)) = feed.next_group(fill.part_column).await? else {
                    return Ok::<_, DataFusionError>(None);
                };
                let out = tokio::task::spawn_blocking(move || fill.batches(part, batches))
                    .await
                    .map_err(|e| DataFusionError::External(Box::new(e)))??;
                Ok(Some((futures::stream::iter(out.into_iter().map(Ok)), feed)))
            }
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.fill.schema.clone(),
            stream,
        )))
    }
}

/// The input, cut into groups of one part's rows.
struct Feed {
    input: SendableRecordBatchStream,
    held: Vec<RecordBatch>,
    part: Option<u64>,
    rows: usize,
    ended: bool,
}

impl Feed {
    /// The next group: batches of one part, at most about
    /// [`GATHER_ROWS`] rows; `None` at the end.
    async fn next_group(
        &mut self,
        part_column: usize,
    ) -> DfResult<Option<(u64, Vec<RecordBatch>)>> {
        loop {
            if self.ended {
                return Ok(self.take());
            }
            let Some(batch) = self.input.next().await.transpose()? else {
                self.ended = true;
                continue;
            };
            if batch.num_rows() == 0 {
                continue;
            }
            let part = part_of(&batch, part_column)?;
            let full = self.part.is_some_and(|p| p != part) || self.rows >= GATHER_ROWS;
            let group = if full { self.take() } else { None };
            self.part = Some(part);
            self.rows += batch.num_rows();
            self.held.push(batch);
            if group.is_some() {
                return Ok(group);
            }
        }
    }

    fn take(&mut self) -> Option<(u64, Vec<RecordBatch>)> {
        let part = self.part.take()?;
        self.rows = 0;
        Some((part, std::mem::take(&mut self.held))).filter(|(_, b)| !b.is_empty())
    }
}

/// The part id of a batch's rows (one file's, so one part's).
fn part_of(batch: &RecordBatch, column: usize) -> DfResult<u64> {
    batch
        .column(column)
        .as_any()
        .downcast_ref::<UInt64Array>()
        .filter(|c| c.is_valid(0))
        .map(|c| c.value(0))
        .ok_or_else(|| DataFusionError::Internal(format!("scan batch without its {PART}")))
}

impl Fill {
    /// `batches` of part `id` with their texts, in the output schema.
    fn batches(&self, id: u64, batches: Vec<RecordBatch>) -> DfResult<Vec<RecordBatch>> {
        let external = |e: crate::Error| DataFusionError::External(Box::new(e));
        let (part, path) = self
            .parts
            .get(&id)
            .ok_or_else(|| DataFusionError::Internal(format!("scan of unknown part {id}")))?;
        let mut at = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
        for b in &batches {
            at.extend(super::positions_of(b).map_err(external)?.values());
        }
        let file = PartFile::open(path).map_err(external)?;
        let metadata = part
            .reader_metadata(&file, Some(self.cache.as_ref()))
            .map_err(external)?;
        let texts = super::gather(file, metadata, &at, &self.texts).map_err(external)?;
        let mut out = Vec::with_capacity(batches.len());
        let mut offset = 0;
        for b in batches {
            let n = b.num_rows();
            let columns: Vec<ArrayRef> = self
                .sources
                .iter()
                .map(|s| match s {
                    Source::Input(i) => b.column(*i).clone(),
                    Source::Text(t) => {
                        let k = self.texts.iter().position(|x| x == t).unwrap_or_default();
                        texts[k].slice(offset, n)
                    }
                })
                .collect();
            offset += n;
            let options = RecordBatchOptions::new().with_row_count(Some(n));
            out.push(RecordBatch::try_new_with_options(
                self.schema.clone(),
                columns,
                &options,
            )?);
        }
        Ok(out)
    }
}
