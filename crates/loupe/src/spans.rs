//! Where `loupe serve` keeps spans (`[store] backend`): the embedded store
//! of the data directory, or ClickHouse (docs/CLICKHOUSE.md).
//!
//! Either way the data directory is opened: it keeps the API keys, the
//! console's tag rules and retention, alert state, the Dify sync's
//! checkpoints and the logs. With ClickHouse, spans are written to and read
//! from the server only, and the rollups behind `/metrics` and the alert
//! windows are kept in memory from the rows each write stores there
//! ([`loupe_clickhouse::ClickHouseStore::on_change`]): counters count from
//! the server's start, as Prometheus counters do after a restart, and the
//! minute windows alert rules read are warmed at start from the spans
//! ClickHouse holds ([`Rollups::warm`]). SQL (the
//! API's, the analytics', the budgets') runs in the data directory's SQL
//! engine over ClickHouse's rows ([`ClickHouseReader`]); the analytics'
//! past hours are cached there too, kept exact by the same writes'
//! reports (`Store::note_external_changes`).

use std::sync::Arc;

use anyhow::Context;
use futures::future::BoxFuture;
use loupe_backend::{
    BatchStream, OffsetPage, PageQuery, Plan, QueryLimits, QueryResult, ScanRequest, SpanPage,
    SpanQuery, SpanReader, SpanWriter, StoreError, TracesQuery,
};
use loupe_model::ProjectId;
use loupe_rollup::Rollups;
use loupe_rollup::expose::{Format, SelfMetric};
use loupe_store::Store;
use parking_lot::Mutex;

use crate::config::Config;

/// The span backend of a running server.
#[derive(Clone)]
pub enum Spans {
    /// The data directory's store holds the spans and their rollups.
    Embedded(Store),
    /// A ClickHouse server or cluster holds the spans; `local` is the data
    /// directory's store (logs, state), `rollups` what the writes counted.
    ClickHouse {
        /// The backend.
        clickhouse: loupe_clickhouse::ClickHouseStore,
        /// The data directory's store.
        local: Store,
        /// Rollups of the rows stored since the server started.
        rollups: Arc<Mutex<Rollups>>,
    },
}

/// The ClickHouse `[store]` keeps spans in, connected (its tables made),
/// with its URL; `None` with the embedded backend.
pub async fn configured_clickhouse(
    store: &loupe_store::StoreConfig,
) -> anyhow::Result<Option<(loupe_clickhouse::ClickHouseStore, String)>> {
    let Some(ch) = store.clickhouse_for_serve() else {
        return Ok(None);
    };
    let url = ch.url.clone();
    let clickhouse = loupe_clickhouse::ClickHouseStore::connect(ch)
        .await
        .with_context(|| format!("cannot use ClickHouse at {url} ([store.clickhouse])"))?;
    Ok(Some((clickhouse, url)))
}

/// Fills the alert windows (the last `minutes` minutes of the minute
/// tier) from the spans ClickHouse holds, so alert rules see the same
/// windows after a restart; the counters still start at zero. A failure
/// only costs the windows: it is logged and the server starts.
async fn warm(
    clickhouse: &loupe_clickhouse::ClickHouseStore,
    rollups: &Mutex<Rollups>,
    minutes: usize,
) {
    let started = std::time::Instant::now();
    let window_ns = i64::try_from(minutes)
        .unwrap_or(i64::MAX)
        .saturating_mul(60_000_000_000);
    let since = loupe_model::time::now_ns().saturating_sub(window_ns);
    let mut each = |span: &loupe_model::Span| rollups.lock().warm(span);
    match clickhouse.recent_spans(since, &mut each).await {
        Ok(spans) => tracing::info!(
            spans,
            minutes,
            ms = started.elapsed().as_millis() as u64,
            "alert windows warmed from the spans in ClickHouse"
        ),
        Err(e) => tracing::warn!(
            error = %e,
            "could not read recent spans from ClickHouse: alert windows start empty"
        ),
    }
}

impl Spans {
    /// The backend `config` names, beside the data directory's `store`.
    /// ClickHouse is connected (and its tables created) before anything
    /// is served, so a wrong URL or profile stops the start.
    pub async fn open(config: &Config, store: &Store) -> anyhow::Result<Self> {
        let Some((clickhouse, url)) = configured_clickhouse(&config.store).await? else {
            return Ok(Self::Embedded(store.clone()));
        };
        // The hour tier answers the embedded store's queries; ClickHouse
        // answers its own, so none is kept here.
        let rollups = Arc::new(Mutex::new(Rollups::without_hour_tier(
            config.metrics.clone(),
        )));
        // Rows stored from now on carry versions from now on (versions are
        // the wall clock's nanoseconds); older ones were counted by the
        // warm-up below, in the minute windows only.
        let started = u64::try_from(loupe_model::time::now_ns()).unwrap_or(0);
        warm(&clickhouse, &rollups, config.metrics.minutes_kept).await;
        match clickhouse.keep_hour_tier(&config.metrics).await {
            Ok(loupe_clickhouse::HourTierStart::Kept) => {}
            Ok(loupe_clickhouse::HourTierStart::Rebuilt { spans, generation }) => tracing::info!(
                spans,
                generation,
                "the hour tier in ClickHouse was made anew from the spans it holds"
            ),
            Err(e) => tracing::warn!(
                error = %e,
                "could not make the hour tier in ClickHouse: aggregate queries scan the spans"
            ),
        }
        let counted = rollups.clone();
        let local = store.clone();
        let hook: loupe_clickhouse::ChangeHook = Box::new(move |received, changes| {
            // The analytics' cached hours of both versions are stale (the
            // store's lock, never held with the rollups' one).
            local.note_external_changes(changes.iter().flat_map(|c| {
                c.old
                    .map(|old| (old.project.as_str(), old.start_time))
                    .into_iter()
                    .chain([(c.new.project.as_str(), c.new.start_time)])
            }));
            let mut r = counted.lock();
            r.note_ingested(received as u64);
            for c in changes {
                match (c.old, c.old_version) {
                    (Some(old), Some(v)) if v < started => r.apply_over_warmed(old, c.new),
                    _ => r.apply(c.old, c.new),
                }
            }
        });
        if clickhouse.on_change(hook).is_err() {
            anyhow::bail!("the ClickHouse backend already reports its writes elsewhere");
        }
        tracing::info!(
            url = %url,
            server_version = clickhouse.server_version(),
            profile = clickhouse.profile().as_str(),
            "spans are kept in ClickHouse"
        );
        Ok(Self::ClickHouse {
            clickhouse,
            local: store.clone(),
            rollups,
        })
    }

    /// What the ingest pipeline writes spans to.
    pub fn writer(&self) -> Arc<dyn SpanWriter> {
        match self {
            Self::Embedded(s) => Arc::new(s.clone()),
            Self::ClickHouse { clickhouse, .. } => Arc::new(clickhouse.clone()),
        }
    }

    /// What the API reads spans from.
    pub fn reader(&self) -> Arc<dyn SpanReader> {
        match self {
            Self::Embedded(s) => Arc::new(s.clone()),
            Self::ClickHouse {
                clickhouse, local, ..
            } => Arc::new(ClickHouseReader {
                clickhouse: Arc::new(clickhouse.clone()),
                local: local.clone(),
            }),
        }
    }

    /// The recent rollups alert rules are evaluated on.
    pub fn recent_rollups(&self) -> Rollups {
        match self {
            Self::Embedded(s) => s.recent_rollups(),
            Self::ClickHouse { rollups, .. } => rollups.lock().clone_recent(),
        }
    }

    /// The `/metrics` body of the spans and logs, with the caller's own
    /// metrics.
    pub fn render_metrics(
        &self,
        format: Format,
        project: Option<&str>,
        own: Vec<SelfMetric>,
    ) -> String {
        match self {
            Self::Embedded(s) => s.render_metrics_with(format, project, own),
            Self::ClickHouse { local, rollups, .. } => {
                let mut own = own;
                own.extend(local.analytics_cache_metrics());
                let mut text = loupe_rollup::expose::render(&rollups.lock(), format, project, &own);
                local.render_log_metrics_into(&mut text, format, project);
                text
            }
        }
    }

    /// `embedded` or `clickhouse`, as the settings view shows it.
    pub fn backend(&self) -> loupe_backend::SpanBackend {
        match self {
            Self::Embedded(_) => loupe_backend::SpanBackend::Embedded,
            Self::ClickHouse { .. } => loupe_backend::SpanBackend::Clickhouse,
        }
    }
}

/// ClickHouse's reads, with SQL (`POST /api/v1/sql`, the product analytics,
/// cost budgets) answered by the data directory's SQL engine over
/// ClickHouse's rows (`Store::read_only_sql_over`): one dialect and one set
/// of bounds for both backends, and the same answers.
struct ClickHouseReader {
    clickhouse: Arc<loupe_clickhouse::ClickHouseStore>,
    local: Store,
}

impl ClickHouseReader {
    /// The plan's answer from ClickHouse's hour tier (`span_hours`) when it
    /// gives it exactly, by the embedded store's rules
    /// (`loupe_store::hour_answers`): whole hours from the tier, summed by
    /// ClickHouse over the dimensions the plan does not name, and the
    /// partial hours at either end by listing their spans. `None`: the
    /// plan is run on the spans.
    async fn hour_answer(
        &self,
        project: &ProjectId,
        plan: &Plan,
        limits: QueryLimits,
    ) -> Result<Option<QueryResult>, StoreError> {
        use loupe_store::hour_answers::{
            Known, answer, named_dims, needs_histograms, prepare_over, required_dims,
        };
        if plan.output != loupe_backend::plan::Output::Aggregates
            || !self.local.answers_from_rollups()
        {
            return Ok(None);
        }
        let Some((labels, tags)) = self.clickhouse.hour_tier() else {
            return Ok(None);
        };
        let known = Known::new(labels.clone(), tags.clone());
        // The TTL drops a day's spans and hours at different moments: a
        // plan reaching the oldest kept day is scanned.
        const DAY_NS: i64 = 86_400_000_000_000;
        let oldest_kept_ns = match i64::from(self.clickhouse.retention_days()) {
            0 => i64::MIN,
            d => (loupe_model::time::now_ns().div_euclid(DAY_NS) - d + 1).saturating_mul(DAY_NS),
        };
        let Some(prepared) = prepare_over(&known, plan, oldest_kept_ns, |_, _| true) else {
            return Ok(None);
        };
        let started = std::time::Instant::now();
        let mut edge_rows = Vec::new();
        // Rows the edges read, when ClickHouse says (it may not).
        let mut scanned = Some(0);
        for &(from_ns, to_ns) in &prepared.edges {
            let edge = prepared.edge_plan(plan, from_ns, to_ns);
            let listed =
                SpanReader::query(self.clickhouse.as_ref(), project, &edge, limits).await?;
            if listed.stats.truncated {
                // More edge spans than a listing may hold: scan instead.
                return Ok(None);
            }
            scanned = scanned.zip(listed.stats.rows_scanned).map(|(a, b)| a + b);
            edge_rows.extend(listed.rows);
        }
        let dims = named_dims(plan, &known);
        let required = required_dims(plan, &known);
        let ask = loupe_clickhouse::HourAsk {
            dims: &dims,
            required: &required,
            histograms: needs_histograms(plan),
        };
        let Some(tier) = self
            .clickhouse
            .hour_slice(project, prepared.first_hour, prepared.end_hour, &ask)
            .await
            .map_err(StoreError::from)?
        else {
            return Ok(None);
        };
        if tier.labels != labels || tier.tags != tags {
            // Rebuilt with other tags meanwhile.
            return Ok(None);
        }
        Ok(answer(
            &known,
            &tier.slice,
            project.as_str(),
            plan,
            &prepared,
            &edge_rows,
        )
        .map(|mut result| {
            result.stats.rows_scanned = scanned;
            result.stats.elapsed_ms = started.elapsed().as_millis() as u64;
            result
        }))
    }
}

impl SpanReader for ClickHouseReader {
    fn trace<'a>(
        &'a self,
        project: &'a ProjectId,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<loupe_model::Span>, StoreError>> {
        SpanReader::trace(self.clickhouse.as_ref(), project, id)
    }

    fn traces<'a>(
        &'a self,
        project: &'a ProjectId,
        query: &'a TracesQuery,
    ) -> BoxFuture<'a, Result<Option<Vec<loupe_model::Span>>, StoreError>> {
        self.clickhouse.traces(project, query)
    }

    fn list(&self, query: SpanQuery) -> BoxFuture<'_, Result<SpanPage, StoreError>> {
        self.clickhouse.list(query)
    }

    fn page(&self, query: PageQuery) -> BoxFuture<'_, Result<OffsetPage, StoreError>> {
        self.clickhouse.page(query)
    }

    fn query<'a>(
        &'a self,
        project: &'a ProjectId,
        plan: &'a Plan,
        limits: QueryLimits,
    ) -> BoxFuture<'a, Result<QueryResult, StoreError>> {
        Box::pin(async move {
            if let Some(answer) = self.hour_answer(project, plan, limits).await? {
                return Ok(answer);
            }
            SpanReader::query(self.clickhouse.as_ref(), project, plan, limits).await
        })
    }

    fn query_stream<'a>(
        &'a self,
        project: &'a ProjectId,
        plan: &'a Plan,
        limits: QueryLimits,
    ) -> BoxFuture<'a, Result<BatchStream, StoreError>> {
        self.clickhouse.query_stream(project, plan, limits)
    }

    fn sql<'a>(
        &'a self,
        project: &'a ProjectId,
        sql: &'a str,
        limits: QueryLimits,
    ) -> BoxFuture<'a, Result<QueryResult, StoreError>> {
        let over: Arc<dyn SpanReader> = self.clickhouse.clone();
        Box::pin(async move {
            self.local
                .read_only_sql_over(over, project, sql, limits)
                .await
                .map_err(StoreError::from)
        })
    }

    fn sql_with_partials<'a>(
        &'a self,
        project: &'a ProjectId,
        partials: &'a loupe_backend::Partials<'a>,
        statement: &'a (dyn Fn(&str) -> String + Send + Sync),
        limits: QueryLimits,
    ) -> BoxFuture<'a, Result<QueryResult, StoreError>> {
        let over: Arc<dyn SpanReader> = self.clickhouse.clone();
        Box::pin(async move {
            self.local
                .sql_with_partials_over(over, project, partials, statement, limits)
                .await
                .map_err(StoreError::from)
        })
    }

    fn scan<'a>(
        &'a self,
        project: &'a ProjectId,
        request: ScanRequest,
    ) -> BoxFuture<'a, Result<BatchStream, StoreError>> {
        self.clickhouse.scan(project, request)
    }

    fn session_runs<'a>(
        &'a self,
        project: &'a ProjectId,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<loupe_backend::RunSummary>, StoreError>> {
        self.clickhouse.session_runs(project, session_id)
    }

    fn user_summary<'a>(
        &'a self,
        project: &'a ProjectId,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<loupe_backend::UserSummary>, StoreError>> {
        self.clickhouse.user_summary(project, user_id)
    }
}
