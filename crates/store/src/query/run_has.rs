//! `run has (…)` answered first: the run keys of the spans that match the
//! inner filter, found by a scan of their own, become a list the outer
//! scan filters on.
//!
//! Why: as an `IN (subquery)`, DataFusion joins the outer scan with the
//! inner one and cannot narrow the outer scan by what the inner found. With
//! the keys known:
//! - the `run has` that every kept span must satisfy (conjuncts of the
//!   whole filter) narrow to the runs in all of them, often none ("both
//!   inventory and payment failed"), and then no span is read at all;
//! - a few runs (up to 64) are an `IN` list, read by position through each
//!   part's index, and a part holding none of them is skipped (`Pruning` in
//!   `table.rs`); more are the build side of a semi join, so the inner scan
//!   is not run twice;
//! - the inner scan's full-text words narrow it like any top-level search,
//!   and a listing by start time reads its newest windows first again.
//!
//! A `run has` matching more than [`RUN_HAS_KEYS_MAX`] runs stays a
//! subquery: its keys are not held in memory.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::AsArray;
use arrow::datatypes::DataType;
use datafusion::prelude::ident;
use futures::StreamExt;
use loupe_backend::plan::{Filter, Plan, QueryLimits};
use loupe_model::{ProjectId, column};

use super::{SPANS_SHAPE, ScanCounter, compile, required_text, run_has_inners};
use crate::read::SPANS_TABLE;
use crate::{Error, Store};

/// The most run keys a `run has` is answered with as a list.
pub(crate) const RUN_HAS_KEYS_MAX: usize = 100_000;

/// The distinct run keys one `run has` matched.
pub(crate) type RunKeys = Arc<[String]>;

impl Store {
    /// The run keys of each `run has` of the plan's filter, in the order
    /// [`compile::filter_expr`] numbers them; `None` for one that matched
    /// more than [`RUN_HAS_KEYS_MAX`] runs (it stays a subquery).
    pub(crate) async fn run_has_keys(
        &self,
        project: &ProjectId,
        plan: &Plan,
        limits: QueryLimits,
        counter: Arc<ScanCounter>,
    ) -> Result<Vec<Option<RunKeys>>, Error> {
        let mut inners = Vec::new();
        if let Some(f) = &plan.filter {
            run_has_inners(f, true, &mut inners);
        }
        // Most queries have none: no runtime for them.
        if inners.is_empty() {
            return Ok(Vec::new());
        }
        // Side by side: two `run has` (inventory failed, payment failed)
        // are two scans, and there are cores for both. One runtime: they
        // reserve from one memory pool of the query's limit, as the
        // subqueries of one plan do.
        let runtime = self.query_runtime(limits.memory_bytes)?;
        let mut found = futures::future::try_join_all(inners.iter().map(|(inner, _)| {
            self.run_keys_of(
                runtime.clone(),
                project,
                plan,
                inner,
                limits,
                counter.clone(),
            )
        }))
        .await?;
        // Runs every kept span's run must be in: each conjunct's keys
        // narrow to their intersection (often none: "inventory and payment
        // both failed" then reads no span at all).
        let conjuncts: Vec<usize> = (0..inners.len())
            .filter(|&i| inners[i].1 && found[i].is_some())
            .collect();
        if conjuncts.len() > 1 {
            let mut sets: Vec<&RunKeys> = conjuncts
                .iter()
                .filter_map(|&i| found[i].as_ref())
                .collect();
            sets.sort_by_key(|k| k.len());
            let others: Vec<HashSet<&str>> = sets[1..]
                .iter()
                .map(|k| k.iter().map(String::as_str).collect())
                .collect();
            let both: RunKeys = sets[0]
                .iter()
                .filter(|k| others.iter().all(|o| o.contains(k.as_str())))
                .cloned()
                .collect();
            for i in conjuncts {
                found[i] = Some(both.clone());
            }
        }
        Ok(found)
    }

    /// The distinct run keys of the spans in the plan's range that match
    /// `inner` (no `run has` inside: the language forbids nesting), or
    /// `None` past [`RUN_HAS_KEYS_MAX`].
    async fn run_keys_of(
        &self,
        runtime: Arc<datafusion::execution::runtime_env::RuntimeEnv>,
        project: &ProjectId,
        plan: &Plan,
        inner: &Filter,
        limits: QueryLimits,
        counter: Arc<ScanCounter>,
    ) -> Result<Option<RunKeys>, Error> {
        let sub = Plan {
            filter: Some(inner.clone()),
            ..plan.clone()
        };
        let ctx =
            self.limited_session_on(runtime, project, limits, counter, required_text(&sub, &[]))?;
        let scoped = ctx
            .table(SPANS_TABLE)
            .await?
            .filter(ident(column::START_TIME).gt_eq(compile::ts(plan.from_ns)))?
            .filter(ident(column::START_TIME).lt(compile::ts(plan.to_ns)))?;
        let base = scoped.logical_plan().clone();
        let mut runs = compile::RunHas {
            base: &base,
            found: &[],
            n: 0,
        };
        let predicate = compile::filter_expr(inner, &mut runs, &SPANS_SHAPE)?;
        #[cfg(test)]
        let max = self
            .inner
            .run_has_keys_max
            .load(std::sync::atomic::Ordering::Relaxed);
        #[cfg(not(test))]
        let max = RUN_HAS_KEYS_MAX;

        let df = scoped
            .filter(predicate)?
            .aggregate(vec![compile::run_key().alias("run_key")], vec![])?
            .limit(0, Some(max.saturating_add(1)))?;
        let mut stream = df.execute_stream().await?;
        let mut keys = Vec::new();
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let Some(col) = batch.columns().first() else {
                continue;
            };
            let col = arrow::compute::cast(col, &DataType::Utf8)?;
            keys.extend(col.as_string::<i32>().iter().flatten().map(str::to_owned));
            if keys.len() > max {
                return Ok(None);
            }
        }
        Ok(Some(keys.into()))
    }
}
