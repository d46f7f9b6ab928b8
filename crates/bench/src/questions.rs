//! The questions, each as the SQL a Dify operator would write over
//! Dify's tables (run by PostgreSQL, and by DuckDB over the same rows as
//! Parquet: the same text but where the dialects differ) and as a Loupe
//! query, with the columns the answers are compared on. Four of them filter
//! on one workspace (tenant) and on business tags.

use std::collections::{BTreeMap, BTreeSet};

use crate::copy::timestamp_ns as timestamp;
use crate::loupe_side::LoupeQuery;

const DAY_NS: i64 = 86_400_000_000_000;

/// What the questions need from the generated data.
#[derive(Debug, Clone)]
pub struct Context {
    /// Window start (inclusive), ns.
    pub start_ns: i64,
    /// Window end (exclusive), ns; Loupe's "now".
    pub end_ns: i64,
    /// A run to fetch by id.
    pub run_id: String,
    /// The workflow app of the logs page (OrderDesk).
    pub app_id: String,
    /// Its tenant: the workspace of the tenant-filtered questions.
    pub tenant_id: String,
    /// The span attribute holding the tenant: `dify.tenant_id` where spans
    /// come from the Dify database sync, `metadata.tenant_id` where they
    /// come from Dify's tracing (OTLP/Phoenix) as the generator makes them.
    pub tenant_attr: &'static str,
    /// Whether spans name a tool by its node's title, as the Dify database
    /// sync does (like Dify's Langfuse provider; the tool itself is in
    /// `execution_metadata.tool_info.provider_id`), rather than by the tool
    /// (`inventory`), as Dify's OTLP tracing does.
    pub tools_by_title: bool,
    /// The node titles of each tool, from the generated runs (`inventory`:
    /// "Check inventory", "Reserve stock").
    pub tool_titles: BTreeMap<String, BTreeSet<String>>,
}

impl Context {
    /// Loupe's filter for calls of `tool`: by name, or by the titles of its
    /// nodes where spans carry titles.
    fn tool_is(&self, tool: &str) -> String {
        if !self.tools_by_title {
            return format!("tool_name={tool}");
        }
        let titles: Vec<String> = self
            .tool_titles
            .get(tool)
            .into_iter()
            .flatten()
            .map(|t| format!("{t:?}"))
            .collect();
        format!("tool_name in ({})", titles.join(", "))
    }
}

/// One statement of one side, with the columns compared (`None`: timed only;
/// empty: every column).
#[derive(Debug, Clone)]
pub struct Step<Q> {
    /// The statement.
    pub query: Q,
    /// Compared columns.
    pub compare: Option<Vec<&'static str>>,
}

/// A question.
#[derive(Debug, Clone)]
pub struct Question {
    /// Short name (the report's row).
    pub name: String,
    /// PostgreSQL statements, run in order; their times add up.
    pub pg: Vec<Step<String>>,
    /// DuckDB statements (PostgreSQL's, where the dialects agree).
    pub duck: Vec<Step<String>>,
    /// Loupe queries, run in order.
    pub loupe: Vec<Step<LoupeQuery>>,
    /// Whether row order is part of the answer.
    pub ordered: bool,
    /// Drop Loupe rows whose first compared cell is NULL (spans that are not
    /// node executions).
    pub loupe_nodes_only: bool,
}

fn step<Q>(query: Q, compare: &[&'static str]) -> Step<Q> {
    Step {
        query,
        compare: Some(compare.to_vec()),
    }
}

fn lang(text: String) -> LoupeQuery {
    LoupeQuery::Lang(text)
}

fn rfc3339(ns: i64) -> String {
    timestamp(ns).replace(' ', "T") + "Z"
}

/// The questions over `ctx`'s window.
pub fn questions(ctx: &Context) -> Vec<Question> {
    let (s, e) = (rfc3339(ctx.start_ns), rfc3339(ctx.end_ns));
    let window = format!("from {s} to {e}");
    let (ps, pe) = (timestamp(ctx.start_ns), timestamp(ctx.end_ns));
    // The run and its nodes by primary key and `workflow_run_id` index.
    let one_run_pg = vec![
        Step {
            query: format!("SELECT * FROM workflow_runs WHERE id = '{}'", ctx.run_id),
            compare: None,
        },
        step(
            format!(
                "SELECT *, elapsed_time * 1e9 AS duration FROM workflow_node_executions \
                 WHERE workflow_run_id = '{}' ORDER BY index",
                ctx.run_id
            ),
            &["node_type", "status", "duration"],
        ),
    ];
    let pg_window = format!("created_at >= '{ps}' AND created_at < '{pe}'");
    let r_window = format!("r.created_at >= '{ps}' AND r.created_at < '{pe}'");
    let n_window = format!("n.created_at >= '{ps}' AND n.created_at < '{pe}'");
    let day_start = timestamp(ctx.end_ns - DAY_NS);
    let tool = "n.execution_metadata::json->'tool_info'->>'provider_id'";
    // The per-tool grouping: what the spans name a tool by (see
    // `Context::tools_by_title`), so both sides group the same calls.
    let tool_group = if ctx.tools_by_title { "n.title" } else { tool };
    let (inventory, payment) = (ctx.tool_is("inventory"), ctx.tool_is("payment"));
    // Tokens and cost per model per day, over node rows `n` (joined to
    // their runs `r` by `join`). The price is a decimal string: PostgreSQL
    // sums it as `numeric`; DuckDB's bare DECIMAL has 3 digits, so a double.
    let tokens_sql = |num: &str, join: &str| {
        format!(
            "SELECT n.process_data::json->>'model_name' AS model, \
             (extract(epoch FROM date_trunc('day', n.created_at)) * 1000000000)::bigint AS day, \
             sum((n.execution_metadata::json->>'total_tokens')::bigint) AS tokens, \
             sum((n.execution_metadata::json->>'total_price')::{num}) AS cost \
             FROM workflow_node_executions n {join}WHERE n.node_type = 'llm' AND {n_window} GROUP BY 1, 2"
        )
    };
    let tenant = &ctx.tenant_id;
    // Loupe's tenant filter: the attribute the spans carry (quoted: an id
    // may look like a number).
    let gold_join = format!(
        "JOIN workflow_runs r ON r.id = n.workflow_run_id \
         AND r.inputs::json->'profile'->>'tier' = 'gold' AND n.tenant_id = '{tenant}' "
    );
    let in_tenant = format!("attributes.{}=\"{tenant}\"", ctx.tenant_attr);
    // The same workspace as the built-in tag (`[dify] workspace_tag`): a
    // small map, and a dimension of the hour rollups.
    let by_tag = format!(
        "tags.{}=\"{tenant}\"",
        loupe_normalise::tags::DEFAULT_WORKSPACE_TAG
    );
    let q = |name: &str, pg: Vec<Step<String>>, loupe, ordered| Question {
        name: name.to_owned(),
        duck: pg.clone(),
        pg,
        loupe,
        ordered,
        loupe_nodes_only: false,
    };
    let mut out = vec![
        q(
            "success rate by category, 7 d",
            vec![step(
                format!(
                    "SELECT inputs::json->>'category' AS category, \
                 avg(CASE WHEN status = 'succeeded' THEN 1.0 ELSE 0.0 END) AS success_rate \
                 FROM workflow_runs WHERE {pg_window} AND status IN ('succeeded', 'failed') GROUP BY 1"
                ),
                &[],
            )],
            vec![step(
                lang(format!(
                    "{window} span_kind=workflow | by tags.category | success_rate()"
                )),
                &[],
            )],
            false,
        ),
        q(
            "avg and p95 per tool per hour, 7 d",
            vec![step(
                format!(
                    "SELECT {tool_group} AS tool, \
                 (extract(epoch FROM date_trunc('hour', n.created_at)) * 1000000000)::bigint AS bucket, \
                 avg(n.elapsed_time) * 1e9 AS avg_ns, \
                 percentile_cont(0.95) WITHIN GROUP (ORDER BY n.elapsed_time) * 1e9 AS p95_ns \
                 FROM workflow_node_executions n WHERE n.node_type = 'tool' AND {n_window} GROUP BY 1, 2"
                ),
                &[],
            )],
            vec![step(
                lang(format!(
                    "{window} span_kind=tool | by tool_name, bucket(1h) | avg(duration), p95(duration)"
                )),
                &[],
            )],
            false,
        ),
        q(
            "errors by node type, 24 h",
            vec![step(
                format!(
                    "SELECT node_type, count(*) FROM workflow_node_executions \
                 WHERE status = 'failed' AND created_at >= '{day_start}' AND created_at < '{pe}' GROUP BY node_type"
                ),
                &[],
            )],
            vec![step(
                lang(format!(
                    "from {} to {e} status=error exists node_type | by node_type | count()",
                    rfc3339(ctx.end_ns - DAY_NS)
                )),
                &[],
            )],
            false,
        ),
        q(
            "newest 100 runs whose retrieval failed with \"500\"",
            vec![step(
                format!(
                    "SELECT r.id, r.created_at, r.status, r.elapsed_time FROM workflow_runs r WHERE {r_window} AND EXISTS \
                 (SELECT 1 FROM workflow_node_executions n WHERE n.workflow_run_id = r.id \
                 AND n.node_type = 'knowledge-retrieval' AND n.status = 'failed' AND n.error LIKE '%500%') \
                 ORDER BY r.created_at DESC LIMIT 100"
                ),
                &["id"],
            )],
            vec![step(
                lang(format!(
                    "{window} span_kind=workflow run has (span_kind=retrieval status=error error_message contains \"500\") \
                 | sort start_time desc | limit 100 | fields run_id, start_time, status, duration"
                )),
                &["run_id"],
            )],
            true,
        ),
        q(
            "runs where inventory took > 1 s, category phone",
            vec![step(
                format!(
                    "SELECT DISTINCT r.id, r.created_at FROM workflow_runs r \
                 JOIN workflow_node_executions n ON n.workflow_run_id = r.id \
                 WHERE {r_window} AND r.inputs::json->>'category' = 'phone' AND n.node_type = 'tool' \
                 AND {tool} = 'inventory' AND n.elapsed_time > 1 ORDER BY r.created_at DESC LIMIT 1000"
                ),
                &["id"],
            )],
            vec![step(
                lang(format!(
                    "{window} span_kind=workflow tags.category=phone run has ({inventory} duration>1s) \
                 | sort start_time desc | limit 1000 | fields run_id, start_time"
                )),
                &["run_id"],
            )],
            true,
        ),
        q(
            "runs where inventory and payment both failed",
            vec![step(
                format!(
                    "SELECT count(*) FROM workflow_runs r WHERE {r_window} \
                 AND EXISTS (SELECT 1 FROM workflow_node_executions n WHERE n.workflow_run_id = r.id \
                 AND n.node_type = 'tool' AND {tool} = 'inventory' AND n.status = 'failed') \
                 AND EXISTS (SELECT 1 FROM workflow_node_executions n WHERE n.workflow_run_id = r.id \
                 AND n.node_type = 'tool' AND {tool} = 'payment' AND n.status = 'failed')"
                ),
                &[],
            )],
            vec![step(
                lang(format!(
                    "{window} span_kind=workflow run has ({inventory} status=error) \
                 run has ({payment} status=error) | count()"
                )),
                &[],
            )],
            false,
        ),
        q(
            "latency and failure rate by user tier",
            vec![step(
                format!(
                    "SELECT inputs::json->'profile'->>'tier' AS tier, avg(elapsed_time) * 1e9, \
                 percentile_cont(0.95) WITHIN GROUP (ORDER BY elapsed_time) * 1e9, \
                 avg(CASE WHEN status = 'failed' THEN 1.0 ELSE 0.0 END) \
                 FROM workflow_runs WHERE {pg_window} GROUP BY 1"
                ),
                &[],
            )],
            vec![step(
                lang(format!(
                    "{window} span_kind=workflow | by tags.tier | avg(duration), p95(duration), error_rate()"
                )),
                &[],
            )],
            false,
        ),
        q(
            "runs whose query contains \"refund\"",
            vec![step(
                format!(
                    "SELECT count(*) FROM workflow_runs WHERE {pg_window} AND inputs::json->>'query' LIKE '%refund%'"
                ),
                &[],
            )],
            vec![step(
                lang(format!(
                    "{window} span_kind=workflow input contains \"refund\" | count()"
                )),
                &[],
            )],
            false,
        ),
        Question {
            duck: vec![step(tokens_sql("DOUBLE", ""), &[])],
            ..q(
                "tokens and cost per model per day",
                vec![step(tokens_sql("numeric", ""), &[])],
                vec![step(
                    lang(format!(
                        "{window} span_kind=llm | by model_name, bucket(1d) | sum(total_tokens), sum(cost)"
                    )),
                    &[],
                )],
                false,
            )
        },
        Question {
            name: "one run with all its nodes".into(),
            duck: one_run_pg.clone(),
            pg: one_run_pg.clone(),
            loupe: vec![step(
                LoupeQuery::Run(ctx.run_id.clone()),
                &["node_type", "status", "duration"],
            )],
            ordered: true,
            loupe_nodes_only: true,
        },
        Question {
            name: "one run with all its nodes (query language)".into(),
            duck: one_run_pg.clone(),
            pg: one_run_pg,
            loupe: vec![step(
                lang(format!(
                    "{window} run_id={} | sort start_time, span_id | limit 1000",
                    ctx.run_id
                )),
                &["node_type", "status", "duration"],
            )],
            ordered: true,
            loupe_nodes_only: true,
        },
        q(
            "Dify logs page: newest 20 failed runs of an app + total",
            vec![
                step(
                    format!(
                        "SELECT l.*, r.status, r.elapsed_time, r.total_tokens, r.total_steps FROM workflow_app_logs l \
                     JOIN workflow_runs r ON r.id = l.workflow_run_id \
                     WHERE l.tenant_id = '{t}' AND l.app_id = '{a}' AND r.status = 'failed' \
                     ORDER BY l.created_at DESC LIMIT 20 OFFSET 0",
                        t = ctx.tenant_id,
                        a = ctx.app_id
                    ),
                    &["workflow_run_id"],
                ),
                step(
                    format!(
                        "SELECT count(*) FROM workflow_app_logs l JOIN workflow_runs r ON r.id = l.workflow_run_id \
                     WHERE l.tenant_id = '{t}' AND l.app_id = '{a}' AND r.status = 'failed'",
                        t = ctx.tenant_id,
                        a = ctx.app_id
                    ),
                    &[],
                ),
            ],
            vec![
                step(
                    lang(format!(
                        "{window} span_kind=workflow app_id={} status=error | sort start_time desc | limit 20",
                        ctx.app_id
                    )),
                    &["run_id"],
                ),
                step(
                    lang(format!(
                        "{window} span_kind=workflow app_id={} status=error | count()",
                        ctx.app_id
                    )),
                    &[],
                ),
            ],
            true,
        ),
        // One workspace, and business tags: the filters users use.
        q(
            "one workspace: success rate by category, 7 d",
            vec![step(
                format!(
                    "SELECT inputs::json->>'category' AS category, \
                 avg(CASE WHEN status = 'succeeded' THEN 1.0 ELSE 0.0 END) AS success_rate \
                 FROM workflow_runs WHERE tenant_id = '{tenant}' AND {pg_window} \
                 AND status IN ('succeeded', 'failed') GROUP BY 1"
                ),
                &[],
            )],
            vec![step(
                lang(format!(
                    "{window} span_kind=workflow {in_tenant} | by tags.category | success_rate()"
                )),
                &[],
            )],
            false,
        ),
        q(
            "one workspace, category phone: latency and failure rate by tier",
            vec![step(
                format!(
                    "SELECT inputs::json->'profile'->>'tier' AS tier, avg(elapsed_time) * 1e9, \
                 percentile_cont(0.95) WITHIN GROUP (ORDER BY elapsed_time) * 1e9, \
                 avg(CASE WHEN status = 'failed' THEN 1.0 ELSE 0.0 END) \
                 FROM workflow_runs WHERE tenant_id = '{tenant}' AND {pg_window} \
                 AND inputs::json->>'category' = 'phone' GROUP BY 1"
                ),
                &[],
            )],
            vec![step(
                lang(format!(
                    "{window} span_kind=workflow {in_tenant} tags.category=phone \
                 | by tags.tier | avg(duration), p95(duration), error_rate()"
                )),
                &[],
            )],
            false,
        ),
        q(
            "one workspace: errors by node type, 24 h",
            vec![step(
                format!(
                    "SELECT node_type, count(*) FROM workflow_node_executions \
                 WHERE tenant_id = '{tenant}' AND status = 'failed' \
                 AND created_at >= '{day_start}' AND created_at < '{pe}' GROUP BY node_type"
                ),
                &[],
            )],
            vec![step(
                lang(format!(
                    "from {} to {e} status=error exists node_type {in_tenant} | by node_type | count()",
                    rfc3339(ctx.end_ns - DAY_NS)
                )),
                &[],
            )],
            false,
        ),
        Question {
            duck: vec![step(tokens_sql("DOUBLE", &gold_join), &[])],
            ..q(
                "one workspace, tier gold: tokens and cost per model per day",
                vec![step(tokens_sql("numeric", &gold_join), &[])],
                vec![step(
                    lang(format!(
                        "{window} span_kind=llm {in_tenant} run has (span_kind=workflow tags.tier=gold) \
                     | by model_name, bucket(1d) | sum(total_tokens), sum(cost)"
                    )),
                    &[],
                )],
                false,
            )
        },
    ];
    // Each workspace question again, the workspace named by its tag.
    let by_workspace_tag: Vec<Question> = out
        .iter()
        .filter(|q| q.name.starts_with("one workspace"))
        .map(|q| Question {
            name: format!("{} (workspace tag)", q.name),
            loupe: q
                .loupe
                .iter()
                .map(|s| Step {
                    query: match &s.query {
                        LoupeQuery::Lang(text) => lang(text.replace(&in_tenant, &by_tag)),
                        other => other.clone(),
                    },
                    compare: s.compare.clone(),
                })
                .collect(),
            ..q.clone()
        })
        .collect();
    out.extend(by_workspace_tag);
    out.retain(|q| !q.pg.is_empty());
    out
}
