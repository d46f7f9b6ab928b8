//! Sessions and users: the spans of one session or user, streamed from a
//! DataFusion scan (filter pushed into it) reading only the columns a
//! summary needs, and folded run by run by [`loupe_backend::timelines`].
//!
//! A user's summary over 200k spans used to collect every span whole
//! (inputs, outputs, attributes) and peaked at 2.05 GiB; three at once
//! were OOM-killed (issue 14). Memory now grows with the runs, at most
//! [`loupe_backend::timelines::MAX_TIMELINE_RUNS`] of them, and the scan's own memory is in the
//! query pools.

use datafusion::logical_expr::{col, lit};
use futures::StreamExt;
use loupe_backend::timelines::{RunsFold, SCORE_NODE_TYPE};
use loupe_backend::{RunSummary, UserSummary};
use loupe_model::{ProjectId, column};

use crate::convert::batch_to_rows;
use crate::read::SPANS_TABLE;
use crate::{Error, Store};

/// The columns a run summary reads (never the payloads).
const RUN_COLUMNS: &[&str] = &[
    column::SPAN_ID,
    column::TRACE_ID,
    column::PARENT_SPAN_ID,
    column::RUN_ID,
    column::SESSION_ID,
    column::USER_ID,
    column::APP_ID,
    column::SPAN_KIND,
    column::NODE_TYPE,
    column::NAME,
    column::STATUS,
    column::RAW_STATUS,
    column::ERROR_MESSAGE,
    column::START_TIME,
    column::END_TIME,
    column::TOTAL_TOKENS,
    column::COST,
];

impl Store {
    /// Folds every span whose `column` equals `value`: run columns of the
    /// runs' spans, and the value columns of score spans (few).
    async fn fold_spans_with(
        &self,
        project: &ProjectId,
        column: &str,
        value: &str,
    ) -> Result<RunsFold, Error> {
        let ctx = self.session(project)?;
        let mut fold = RunsFold::default();
        let score = col(column::NODE_TYPE).eq(lit(SCORE_NODE_TYPE));
        let mut score_columns: Vec<&str> = RUN_COLUMNS.to_vec();
        score_columns.extend([column::OUTPUT, column::ATTRIBUTES]);
        let scans = [
            (
                col(column::NODE_TYPE)
                    .not_eq(lit(SCORE_NODE_TYPE))
                    .or(col(column::NODE_TYPE).is_null()),
                RUN_COLUMNS.to_vec(),
            ),
            (score, score_columns),
        ];
        for (filter, columns) in scans {
            let mut stream = ctx
                .table(SPANS_TABLE)
                .await?
                .filter(col(column).eq(lit(value)))?
                .filter(filter)?
                .select_columns(&columns)?
                .execute_stream()
                .await?;
            while let Some(batch) = stream.next().await {
                for row in batch_to_rows(&batch?)? {
                    fold.push(&row.span);
                }
                if let Some(too_many) = fold.over_bound(column, value) {
                    return Err(Error::DataFusion(
                        datafusion::error::DataFusionError::ResourcesExhausted(too_many),
                    ));
                }
            }
        }
        Ok(fold)
    }

    /// The runs of a session, oldest first.
    pub async fn session_runs(
        &self,
        project: &ProjectId,
        session_id: &str,
    ) -> Result<Vec<RunSummary>, Error> {
        let fold = self
            .fold_spans_with(project, column::SESSION_ID, session_id)
            .await?;
        Ok(fold.runs())
    }

    /// A user's summary; `None` when the user has no runs.
    pub async fn user_summary(
        &self,
        project: &ProjectId,
        user_id: &str,
    ) -> Result<Option<UserSummary>, Error> {
        let fold = self
            .fold_spans_with(project, column::USER_ID, user_id)
            .await?;
        Ok(fold.user(user_id))
    }
}
