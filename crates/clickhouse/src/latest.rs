//! Reads of spans by id without `FINAL`: the newest version of each span,
//! picked with `ORDER BY _version DESC LIMIT 1 BY span_id`.
//!
//! ClickHouse 18.16 runs `FINAL` by merging every selected part at once,
//! with read buffers per column and part: reading whole rows of a table
//! with a few hundred parts passed its memory limit. Lookups by id need
//! only the versions of a few spans, so they read those and keep the
//! newest, in both profiles:
//!
//! ```sql
//! SELECT * FROM (
//!     SELECT <row> FROM spans WHERE project = … AND span_id IN (
//!         SELECT span_id FROM spans WHERE project = … AND <cond>)
//!     ORDER BY _version DESC LIMIT 1 BY span_id)
//! WHERE <cond>
//! ```
//!
//! `<cond>` picks the spans some version of which matches, and is checked
//! again on the newest version, so the answer is `FINAL`'s: a span whose
//! newest version no longer matches is left out, one whose newest version
//! matches is in (that version is among those the inner query saw).

use loupe_model::ProjectId;

use crate::row::{self, Stored};
use crate::sql::quote;
use crate::{Error, Inner};

impl Inner {
    /// The newest version of every span of `project` whose newest version
    /// meets `cond` (SQL over the stored columns), at most `limit` spans.
    pub(crate) async fn latest_where(
        &self,
        project: &ProjectId,
        cond: &str,
        limit: Option<usize>,
    ) -> Result<Vec<Stored>, Error> {
        self.latest_where_as(project, cond, limit, &row::select_list(&self.layout))
            .await
    }

    /// [`Self::latest_where`] reading `columns` (a list `row::decode`
    /// reads: [`row::select_list`] or [`row::light_select_list`]).
    pub(crate) async fn latest_where_as(
        &self,
        project: &ProjectId,
        cond: &str,
        limit: Option<usize>,
        columns: &str,
    ) -> Result<Vec<Stored>, Error> {
        let table = self.layout.table();
        let p = quote(project.as_str());
        let in_op = self.compiler().in_op();
        let limit = limit.map_or(String::new(), |n| format!(" LIMIT {n}"));
        let sql = format!(
            "SELECT * FROM (SELECT {columns} FROM {table} WHERE project = {p} AND span_id {in_op} \
             (SELECT span_id FROM {table} WHERE project = {p} AND {cond}) \
             ORDER BY _version DESC LIMIT 1 BY span_id) WHERE {cond}{limit}",
        );
        self.client
            .select(&sql)
            .await?
            .rows
            .iter()
            .map(|cells| row::decode(cells))
            .collect()
    }

    /// The newest version of each listed span (a span id never changes, so
    /// no second check is needed).
    pub(crate) async fn latest_of_ids<S: AsRef<str>>(
        &self,
        project: &ProjectId,
        span_ids: &[S],
    ) -> Result<Vec<Stored>, Error> {
        let table = self.layout.table();
        let p = quote(project.as_str());
        let mut out = Vec::new();
        for list in crate::sql::in_lists(span_ids) {
            let sql = format!(
                "SELECT {} FROM {table} WHERE project = {p} AND span_id IN ({list}) \
                 ORDER BY _version DESC LIMIT 1 BY span_id",
                row::select_list(&self.layout),
            );
            for cells in self.client.select(&sql).await?.rows {
                out.push(row::decode(&cells)?);
            }
        }
        Ok(out)
    }
}
