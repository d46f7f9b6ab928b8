//! Sessions and users: the spans of one session or user, fetched with
//! DataFusion (filter pushed into the scan) and summarised by
//! [`loupe_backend::timelines`].

use datafusion::logical_expr::{col, lit};
use loupe_backend::timelines::{summarise_runs, summarise_user};
use loupe_backend::{RunSummary, UserSummary};
use loupe_model::{ProjectId, Span, column};

use crate::convert::batch_to_rows;
use crate::read::SPANS_TABLE;
use crate::{Error, Store};

impl Store {
    /// Every span whose `column` equals `value`.
    async fn spans_with(
        &self,
        project: &ProjectId,
        column: &str,
        value: &str,
    ) -> Result<Vec<Span>, Error> {
        let ctx = self.session(project)?;
        let batches = ctx
            .table(SPANS_TABLE)
            .await?
            .filter(col(column).eq(lit(value)))?
            .collect()
            .await?;
        let mut spans = Vec::new();
        for b in &batches {
            spans.extend(batch_to_rows(b)?.into_iter().map(|r| r.span));
        }
        Ok(spans)
    }

    /// The runs of a session, oldest first.
    pub async fn session_runs(
        &self,
        project: &ProjectId,
        session_id: &str,
    ) -> Result<Vec<RunSummary>, Error> {
        let spans = self
            .spans_with(project, column::SESSION_ID, session_id)
            .await?;
        Ok(summarise_runs(&spans))
    }

    /// A user's summary; `None` when the user has no runs.
    pub async fn user_summary(
        &self,
        project: &ProjectId,
        user_id: &str,
    ) -> Result<Option<UserSummary>, Error> {
        let spans = self.spans_with(project, column::USER_ID, user_id).await?;
        Ok(summarise_user(user_id, &spans))
    }
}
