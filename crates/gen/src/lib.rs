//! `loupe-gen`: a deterministic synthetic workload of Dify-shaped runs.
//!
//! The scenario is e-commerce customer service: three Dify apps (the
//! `ShopAssist` chatflow, the `OrderDesk` and `ReturnsHelper` workflows, with
//! published versions), product categories, user tiers, knowledge retrieval
//! that sometimes fails with an HTTP 500, LLM nodes with model, tokens and
//! cost, and the tools `inventory`, `coupon`, `payment` and `logistics`.
//! [`Fault`]s inject errors and latency into one tool, optionally for one
//! category, during a time window.
//!
//! The same [`GenConfig`] always yields the same runs. Each run exists in
//! three forms:
//!
//! - [`runs`]: normalised [`loupe_model::Span`]s, exactly what Loupe's OTLP
//!   path stores for Dify's Phoenix provider (the normaliser's output with
//!   the run-level fields the store fills from the run's root, see
//!   [`fill_run_context`]), ready for `Store::append`;
//! - [`otlp`]: OTLP `ExportTraceServiceRequest`s in the Phoenix/OpenInference
//!   shape, to send to `/v1/traces`;
//! - [`langfuse`]: Langfuse ingestion batches shaped like Dify's Langfuse
//!   provider, to send to `/api/public/ingestion`.
//!
//! Business tags are not set on the spans (tags come from the server's tag
//! rules); [`tag_rules`] gives the rules that extract `category` and `tier`.

pub mod dify_export;
pub mod langfuse;
pub mod otlp;
mod phoenix;
mod plan;
mod rng;
#[cfg(test)]
mod tests;
mod text;

use std::time::Duration;

use loupe_model::{Span, SpanKind};
use loupe_normalise::tags::{TagRuleConfig, TagSource};
use serde_json::Value;

pub use plan::{CATEGORIES, TIERS, TOOLS};

/// 2026-01-01T00:00:00Z in ns: the default start of the generated window.
pub const DEFAULT_START_NS: i64 = 1_767_225_600_000_000_000;
const DAY_NS: i64 = 86_400_000_000_000;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenConfig {
    /// PRNG seed: same seed (and other fields) → same runs.
    pub seed: u64,
    /// Number of runs.
    pub runs: usize,
    /// Start of the window the runs are spread over, ns since the epoch.
    pub start_ns: i64,
    /// Width of that window in ns; runs are evenly spread with jitter.
    pub spread_ns: i64,
    /// Loupe project written on every span.
    pub project: String,
    /// Injected faults.
    pub faults: Vec<Fault>,
}

impl Default for GenConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            runs: 1000,
            start_ns: DEFAULT_START_NS,
            spread_ns: DAY_NS,
            project: loupe_model::ProjectId::DEFAULT.to_owned(),
            faults: Vec::new(),
        }
    }
}

/// An injected fault: calls of `tool` (for runs of `category`, when set)
/// starting in `[from_ns, to_ns)` take `extra_latency_ns` longer and fail
/// with probability `error_rate` with message `error`.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// Tool name (`inventory`, `coupon`, `payment`, `logistics`).
    pub tool: String,
    /// Only runs of this product category; `None` for all.
    pub category: Option<String>,
    /// Window start, ns since the epoch (inclusive).
    pub from_ns: i64,
    /// Window end, ns since the epoch (exclusive).
    pub to_ns: i64,
    /// Probability in `[0, 1]` that an affected call fails.
    pub error_rate: f64,
    /// Latency added to every affected call, ns.
    pub extra_latency_ns: i64,
    /// Error message of the failed calls.
    pub error: String,
}

/// A `--fault` specification that cannot be parsed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid fault {spec:?}: {reason}")]
pub struct FaultError {
    /// The specification as given.
    pub spec: String,
    /// What is wrong.
    pub reason: String,
}

impl Fault {
    /// Parses `tool=inventory,category=phone,from=…,to=…,error_rate=0.8,latency=2s[,error=…]`.
    ///
    /// `from`/`to` are RFC 3339 times or ns since the epoch; unset, they
    /// default to `window` (the generated window). `latency` is a humantime
    /// duration (`2s`, `1500ms`). `error` defaults to a timeout message.
    pub fn parse(spec: &str, window: (i64, i64)) -> Result<Self, FaultError> {
        let err = |reason: String| FaultError {
            spec: spec.to_owned(),
            reason,
        };
        let mut fault = Fault {
            tool: String::new(),
            category: None,
            from_ns: window.0,
            to_ns: window.1,
            error_rate: 1.0,
            extra_latency_ns: 0,
            error: String::new(),
        };
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| err(format!("{part:?} is not key=value")))?;
            let value = value.trim();
            match key.trim() {
                "tool" => fault.tool = value.to_owned(),
                "category" => fault.category = Some(value.to_owned()),
                "from" => fault.from_ns = parse_time(value).map_err(err)?,
                "to" => fault.to_ns = parse_time(value).map_err(err)?,
                "error_rate" | "rate" => {
                    fault.error_rate = value
                        .parse::<f64>()
                        .ok()
                        .filter(|r| (0.0..=1.0).contains(r))
                        .ok_or_else(|| err(format!("error_rate {value:?} is not in [0, 1]")))?;
                }
                "latency" => {
                    let d = humantime::parse_duration(value)
                        .map_err(|e| err(format!("latency {value:?}: {e}")))?;
                    fault.extra_latency_ns = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
                }
                "error" => fault.error = value.to_owned(),
                other => return Err(err(format!("unknown key {other:?}"))),
            }
        }
        if fault.tool.is_empty() {
            return Err(err("tool= is required".into()));
        }
        if fault.error.is_empty() {
            fault.error = format!("{} service timed out after 5s", fault.tool);
        }
        Ok(fault)
    }

    /// A fault making every `tool` call of `category` fail slowly during
    /// `[from_ns, to_ns)`.
    pub fn timeout(tool: &str, category: Option<&str>, from_ns: i64, to_ns: i64) -> Self {
        Fault {
            tool: tool.to_owned(),
            category: category.map(str::to_owned),
            from_ns,
            to_ns,
            error_rate: 1.0,
            extra_latency_ns: i64::try_from(Duration::from_secs(5).as_nanos()).unwrap_or(0),
            error: format!("{tool} service timed out after 5s"),
        }
    }
}

fn parse_time(text: &str) -> Result<i64, String> {
    loupe_model::time::parse_instant(text).map_err(|e| e.to_string())
}

/// One generated run.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Dify workflow run id (a UUID).
    pub run_id: String,
    /// Trace id as stored: Dify's (the run id), which the provider names;
    /// the OTLP trace id it was sent under is kept as `otel.trace_id`.
    pub trace_id: String,
    /// Normalised spans: the provider root, the workflow span, then nodes.
    pub spans: Vec<Span>,
    /// The run's inputs (`query`, `category`, `profile.tier`, `sys.*`, …).
    pub inputs: Value,
}

/// Every run of `config`, in start-time order. Lazy: runs are built on
/// demand, so millions of runs stream in constant memory.
pub fn runs(config: &GenConfig) -> impl Iterator<Item = Run> + use<> {
    runs_in_workspaces(config, 1)
}

/// As [`runs`], with the runs spread over `workspaces` Dify workspaces
/// (tenants; at least one), each with its own copies of the three apps
/// (other app and workflow ids). Workspace `w` gets a share of the runs
/// proportional to 1/(w+1). Every other draw is the same as [`runs`]'s, and
/// workspace 0 has the tenant and app ids of a one-workspace workload, so
/// `runs_in_workspaces(c, 1)` is `runs(c)`.
pub fn runs_in_workspaces(
    config: &GenConfig,
    workspaces: usize,
) -> impl Iterator<Item = Run> + use<> {
    let config = config.clone();
    let workspaces = workspaces.max(1);
    (0..config.runs).map(move |i| build_run(&config, &plan::plan(&config, i, workspaces)))
}

fn build_run(config: &GenConfig, plan: &plan::Plan) -> Run {
    let mut spans: Vec<Span> = phoenix::spans(plan)
        .iter()
        .filter_map(|s| loupe_normalise::otel::normalise(&config.project, s).ok())
        .collect();
    // Dify's ids, as one request (or a server's id cache) resolves them.
    loupe_normalise::otel::link(&mut spans, None);
    fill_run_context(&mut spans);
    // What the ingest pipeline adds to every span (tags aside: they come
    // from the server's rules).
    spans.iter_mut().for_each(loupe_normalise::errors::enrich);
    Run {
        run_id: plan.run_id.clone(),
        trace_id: plan.run_id.clone(),
        spans,
        inputs: plan.inputs.clone(),
    }
}

/// Fills the run-level fields (run, session, user, app, workflow, version)
/// of every span of one trace from its roots (spans without a parent, and
/// `workflow` spans, whose run id wins), where unset: what the store does
/// when the spans of a trace arrive.
pub fn fill_run_context(spans: &mut [Span]) {
    let is_workflow = |s: &Span| s.span_kind == Some(SpanKind::Workflow);
    let roots: Vec<Span> = spans
        .iter()
        .filter(|s| is_workflow(s))
        .chain(
            spans
                .iter()
                .filter(|s| s.parent_span_id.is_none() && !is_workflow(s)),
        )
        .cloned()
        .collect();
    let first = |f: fn(&Span) -> &Option<String>| roots.iter().find_map(|r| f(r).clone());
    let run_id = first(|s| &s.run_id);
    let session = first(|s| &s.session_id);
    let user = first(|s| &s.user_id);
    let app = first(|s| &s.app_id);
    let app_name = first(|s| &s.app_name);
    let workflow = first(|s| &s.workflow_id);
    let version = first(|s| &s.workflow_version);
    for span in spans.iter_mut() {
        let fallback = span.run_id.is_none() || span.run_id == span.trace_id;
        if fallback && run_id.is_some() {
            span.run_id.clone_from(&run_id);
        }
        for (slot, value) in [
            (&mut span.session_id, &session),
            (&mut span.user_id, &user),
            (&mut span.app_id, &app),
            (&mut span.app_name, &app_name),
            (&mut span.workflow_id, &workflow),
            (&mut span.workflow_version, &version),
        ] {
            if slot.is_none() {
                slot.clone_from(value);
            }
        }
    }
}

/// Tag rules extracting the scenario's business tags from the run input:
/// `category` and `tier` (from `profile.tier`).
pub fn tag_rules() -> Vec<TagRuleConfig> {
    let rule = |name: &str, path: &str| TagRuleConfig {
        name: name.to_owned(),
        from: TagSource::Input,
        path: Some(path.to_owned()),
        regex: None,
        project: None,
        app_id: None,
    };
    vec![rule("category", "category"), rule("tier", "profile.tier")]
}

pub(crate) fn plans(config: &GenConfig) -> impl Iterator<Item = plan::Plan> + use<> {
    let config = config.clone();
    (0..config.runs).map(move |i| plan::plan(&config, i, 1))
}
