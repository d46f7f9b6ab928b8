//! Sessions and users (`SpanReader::session_runs`, `user_summary`): the
//! spans of one session or user, folded run by run by
//! `loupe_backend::timelines::RunsFold`, the fold the embedded store uses,
//! so both answer the same. Run spans are read without their payloads and
//! maps; feedback-score spans (few) whole, since the fold reads their
//! value and name from them.

use loupe_backend::timelines::{RunsFold, SCORE_NODE_TYPE};
use loupe_backend::{RunSummary, UserSummary};
use loupe_model::ProjectId;

use crate::sql::quote;
use crate::{Error, Inner, row};

impl Inner {
    async fn fold_spans_with(
        &self,
        project: &ProjectId,
        column: &str,
        value: &str,
    ) -> Result<RunsFold, Error> {
        let mut fold = RunsFold::default();
        let score = quote(SCORE_NODE_TYPE);
        let of = format!("ifNull({column} = {}, 0)", quote(value));
        let scans = [
            (
                format!("{of} AND ifNull(node_type != {score}, 1)"),
                row::light_select_list(),
            ),
            (
                format!("{of} AND ifNull(node_type = {score}, 0)"),
                row::select_list(&self.layout),
            ),
        ];
        for (cond, columns) in scans {
            for r in self.latest_where_as(project, &cond, None, &columns).await? {
                fold.push(&r.span);
            }
            if let Some(too_many) = fold.over_bound(column, value) {
                return Err(Error::TooMany(too_many));
            }
        }
        Ok(fold)
    }

    /// The runs of a session, oldest first.
    pub(crate) async fn session_runs(
        &self,
        project: &ProjectId,
        session_id: &str,
    ) -> Result<Vec<RunSummary>, Error> {
        Ok(self
            .fold_spans_with(project, "session_id", session_id)
            .await?
            .runs())
    }

    /// A user's summary; `None` when the user has no runs.
    pub(crate) async fn user_summary(
        &self,
        project: &ProjectId,
        user_id: &str,
    ) -> Result<Option<UserSummary>, Error> {
        Ok(self
            .fold_spans_with(project, "user_id", user_id)
            .await?
            .user(user_id))
    }
}
