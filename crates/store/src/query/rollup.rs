//! Answering aggregate plans from the hour tier of the rollups.
//!
//! A plan is answered here when its answer is exactly what a scan would
//! give:
//! - its range covers at least one whole hour, inside the retention window
//!   (so spans retention removed, or is about to, never differ between the
//!   two); the whole hours come from the tier, and the partial hours at
//!   either end (a dashboard's "last 24h" at 10:17) from a scan of just
//!   those minutes, folded in with the same measures;
//! - its filter uses only series dimensions (span kind, node type, tool,
//!   model, app, workflow, labelled tags; status `ok`/`error`; the node
//!   dimensions app name, workflow version, model provider, the hour tags,
//!   and the node name where the filter keeps child spans only) with `=`, `!=`, `in`,
//!   `exists`, `and`, `or`, `not`, and `exists parent_span_id`;
//! - it groups by such dimensions and by buckets that are whole hours (by
//!   status only while every series it reads says `ok` or `error`);
//! - its aggregates are count, error rate, success rate, and sum or avg of
//!   duration, tokens or cost;
//! - the tier counts every stored span of the project and no series of it
//!   was folded by the cardinality guard; a plan naming node dimensions
//!   needs a tier that kept them from the start, and one naming `name`
//!   a tier that folded no name in the plan's hours (an hour tag: kept
//!   from the plan's first whole hour on, no value folded in its hours).
//!
//! The edges are listed before the tier is read, not under one lock: a
//! span written in between whose start time moves across an edge boundary
//! can be seen on both sides or neither, as a scan racing the same write
//! can see either version. Anything else returns `None` and the plan is
//! scanned. The semantics
//! match `compile.rs`: unset never matches a comparison, `avg` and `sum`
//! skip nulls, a success rate without finished spans is null, and the
//! output is sorted by the plan's keys then the group keys, nulls last.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use loupe_backend::plan::{
    AggKind, Cmp, Column, FieldRef, Filter, GroupKey, Literal, Output, Plan, QueryResult,
    QueryStats, SortColumn, ValueType,
};
use loupe_model::column;
use loupe_rollup::hours::{HOUR_NS, HourDim, HourSlice, SumCount};
use loupe_rollup::{HourMeasures, NodeDims, RollupKey, Rollups};
use serde_json::Value;

/// The tags the tier knows by name: the labels of its series keys, and the
/// tags its node dimensions keep.
pub struct Known {
    labels: Vec<String>,
    tags: Vec<String>,
}

impl Known {
    pub(crate) fn of(rollups: &Rollups) -> Known {
        Known {
            labels: rollups.config().labels.clone(),
            tags: rollups.hours().tags().to_vec(),
        }
    }

    /// The tags of a tier kept elsewhere (a backend's own): its series'
    /// labels and its node dimensions' tags, in their orders.
    pub fn new(labels: Vec<String>, tags: Vec<String>) -> Known {
        Known { labels, tags }
    }
}

/// A series dimension a plan may name.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dim {
    Kind,
    NodeType,
    Tool,
    Model,
    App,
    Workflow,
    Status,
    /// Error class and signature: a series has them only for finished
    /// failed spans, so they are exact only under `status = error`.
    ErrorClass,
    ErrorSignature,
    Tag(usize),
    /// `parent_span_id`: only whether it exists (a series knows no ids).
    Parent,
    /// The node dimensions of the tier ([`NodeDims`]). A series names
    /// child spans only, so `name` is exact only under `exists
    /// parent_span_id`.
    Name,
    AppName,
    WorkflowVersion,
    ModelProvider,
    /// A tag the tier keeps beside the labels ([`NodeDims::tags`]).
    HourTag(usize),
}

impl Dim {
    fn of(field: &FieldRef, known: &Known) -> Option<Dim> {
        match field {
            FieldRef::Column { name, .. } => Some(match name.as_str() {
                column::SPAN_KIND => Dim::Kind,
                column::NODE_TYPE => Dim::NodeType,
                column::TOOL_NAME => Dim::Tool,
                column::MODEL_NAME => Dim::Model,
                column::APP_ID => Dim::App,
                column::WORKFLOW_ID => Dim::Workflow,
                column::STATUS => Dim::Status,
                column::ERROR_CLASS => Dim::ErrorClass,
                column::PARENT_SPAN_ID => Dim::Parent,
                column::NAME => Dim::Name,
                column::APP_NAME => Dim::AppName,
                column::WORKFLOW_VERSION => Dim::WorkflowVersion,
                column::MODEL_PROVIDER => Dim::ModelProvider,
                _ => return None,
            }),
            FieldRef::Tag(t) => match known.labels.iter().position(|l| l == t) {
                Some(i) => Some(Dim::Tag(i)),
                None => known.tags.iter().position(|l| l == t).map(Dim::HourTag),
            },
            FieldRef::Attribute(k) if k == loupe_model::ERROR_SIGNATURE => {
                Some(Dim::ErrorSignature)
            }
            FieldRef::Attribute(_) | FieldRef::Json { .. } => None,
        }
    }

    /// Whether a span's value is in the tier's node dimensions rather than
    /// its series key: the node dimensions and the hour tags.
    fn on_node(self) -> bool {
        self.is_node() || matches!(self, Dim::HourTag(_))
    }

    /// The tier's dimension a backend keeping its own tier groups by.
    fn hour_dim(self) -> HourDim {
        match self {
            Dim::Kind => HourDim::SpanKind,
            Dim::NodeType => HourDim::NodeType,
            Dim::Tool => HourDim::ToolName,
            Dim::Model => HourDim::ModelName,
            Dim::App => HourDim::AppId,
            Dim::Workflow => HourDim::WorkflowId,
            Dim::Status => HourDim::Status,
            Dim::ErrorClass => HourDim::ErrorClass,
            Dim::ErrorSignature => HourDim::ErrorSignature,
            Dim::Tag(i) => HourDim::Label(i),
            Dim::Parent => HourDim::Child,
            Dim::Name => HourDim::Name,
            Dim::AppName => HourDim::AppName,
            Dim::WorkflowVersion => HourDim::WorkflowVersion,
            Dim::ModelProvider => HourDim::ModelProvider,
            Dim::HourTag(i) => HourDim::HourTag(i),
        }
    }

    /// Whether this is one of the tier's node dimensions.
    fn is_node(self) -> bool {
        matches!(
            self,
            Dim::Parent | Dim::Name | Dim::AppName | Dim::WorkflowVersion | Dim::ModelProvider
        )
    }

    /// The series' value; "" is unset.
    fn value<'k>(&self, key: &'k RollupKey, node: &'k NodeDims) -> &'k str {
        match self {
            Dim::Kind => &key.span_kind,
            Dim::NodeType => &key.node_type,
            Dim::Tool => &key.tool_name,
            Dim::Model => &key.model_name,
            Dim::App => &key.app_id,
            Dim::Workflow => &key.workflow_id,
            // Only `ok`/`error` are compared (see `supported`), and a key
            // says `ok`/`error` exactly when the status column does.
            Dim::Status => &key.status,
            Dim::ErrorClass => &key.error_class,
            Dim::ErrorSignature => &key.error_signature,
            Dim::Tag(i) => key.tags.get(*i).map_or("", String::as_str),
            Dim::Parent => {
                if node.child {
                    "child"
                } else {
                    ""
                }
            }
            Dim::Name => &node.name,
            Dim::AppName => &node.app_name,
            Dim::WorkflowVersion => &node.workflow_version,
            Dim::ModelProvider => &node.model_provider,
            Dim::HourTag(i) => node.tag(*i),
        }
    }
}

/// Whether `filter` requires `holds` of every span it keeps: `holds` is
/// true of it or of one of its conjuncts (nested `and`s included).
fn required(filter: Option<&Filter>, holds: &impl Fn(&Filter) -> bool) -> bool {
    match filter {
        Some(Filter::And(fs)) => fs.iter().any(|f| required(Some(f), holds)),
        Some(f) => holds(f),
        None => false,
    }
}

/// Whether `filter` keeps failed spans only (`status=error` at its top
/// level): then a key's error class is the span's.
fn only_errors(filter: Option<&Filter>) -> bool {
    required(filter, &|f| {
        matches!(f, Filter::Compare { field: FieldRef::Column { name, .. }, op: Cmp::Eq, value: Literal::Text(v) }
            if name == column::STATUS && v == "error")
    })
}

/// Whether `filter` keeps child spans only (`exists parent_span_id` at its
/// top level): then a series' name is the span's.
fn only_children(filter: Option<&Filter>) -> bool {
    required(
        filter,
        &|f| matches!(f, Filter::Exists(FieldRef::Column { name, .. }) if name == column::PARENT_SPAN_ID),
    )
}

/// Whether the plan's filter or a group key names a dimension `pick`s.
fn names(plan: &Plan, known: &Known, mut pick: impl FnMut(Dim) -> bool) -> bool {
    fn in_filter(f: &Filter, known: &Known, pick: &mut impl FnMut(Dim) -> bool) -> bool {
        match f {
            Filter::And(fs) | Filter::Or(fs) => fs.iter().any(|f| in_filter(f, known, pick)),
            Filter::Not(f) => in_filter(f, known, pick),
            Filter::Compare { field, .. } | Filter::In { field, .. } | Filter::Exists(field) => {
                Dim::of(field, known).is_some_and(&mut *pick)
            }
            _ => false,
        }
    }
    plan.filter
        .as_ref()
        .is_some_and(|f| in_filter(f, known, &mut pick))
        || plan
            .group_by
            .iter()
            .any(|g| matches!(g, GroupKey::Field(f) if Dim::of(f, known).is_some_and(&mut pick)))
}

/// The dimensions the plan's filter and group keys name: all an answer
/// reads of a series and its nodes, so a backend keeping its own tier
/// may sum away the others before handing the hours over.
pub fn named_dims(plan: &Plan, known: &Known) -> Vec<HourDim> {
    let mut out = Vec::new();
    let mut note = |d: Dim| {
        let d = d.hour_dim();
        if !out.contains(&d) {
            out.push(d);
        }
        false
    };
    names(plan, known, &mut note);
    out
}

/// What the plan's filter requires of every entry it keeps, from its
/// top-level conjuncts: a dimension equal to one of some values
/// (`Some`), or set (`None`: `exists`). A backend keeping its own tier
/// may keep only such entries before it sums them; [`answer`] applies the
/// whole filter again.
pub fn required_dims(plan: &Plan, known: &Known) -> Vec<(HourDim, Option<Vec<String>>)> {
    fn walk(f: &Filter, known: &Known, out: &mut Vec<(HourDim, Option<Vec<String>>)>) {
        let text = |v: &Literal| match v {
            Literal::Text(t) if !t.is_empty() => Some(t.clone()),
            _ => None,
        };
        match f {
            Filter::And(fs) => fs.iter().for_each(|f| walk(f, known, out)),
            Filter::Compare {
                field,
                op: Cmp::Eq,
                value,
            } => {
                if let (Some(d), Some(v)) = (Dim::of(field, known), text(value))
                    && d != Dim::Parent
                {
                    out.push((d.hour_dim(), Some(vec![v])));
                }
            }
            Filter::In { field, values } => {
                let values: Option<Vec<String>> = values.iter().map(text).collect();
                // An empty list keeps nothing; left to `answer`.
                if let (Some(d), Some(vs)) = (Dim::of(field, known), values)
                    && d != Dim::Parent
                    && !vs.is_empty()
                {
                    out.push((d.hour_dim(), Some(vs)));
                }
            }
            Filter::Exists(field) => {
                if let Some(d) = Dim::of(field, known)
                    && d != Dim::Status
                {
                    out.push((d.hour_dim(), None));
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Some(f) = &plan.filter {
        walk(f, known, &mut out);
    }
    out
}

/// Whether the plan needs the tier's latency histograms (a percentile).
pub fn needs_histograms(plan: &Plan) -> bool {
    plan.aggregates
        .iter()
        .any(|a| matches!(a.kind, AggKind::Percentile(_)))
}

/// Whether the tier, as it stands, can answer a plan `answerable` accepts
/// over the hours `[first_hour, end_hour)` (checked again under the lock
/// the answer reads the tier with).
pub(crate) fn tier_answers(rollups: &Rollups, plan: &Plan, first_hour: i64, end_hour: i64) -> bool {
    let known = &Known::of(rollups);
    let hours = rollups.hours();
    hours.is_complete()
        && rollups.folded_series() == 0
        && (hours.node_dims().holds_over(first_hour, end_hour) || !names(plan, known, Dim::is_node))
        && (!hours.name_folded_in(first_hour, end_hour)
            || !names(plan, known, |d| matches!(d, Dim::Name)))
        && (0..known.tags.len()).all(|i| {
            // A tag's values live in the node dimensions: kept where both are.
            (hours.tag_kept(i).holds_over(first_hour, end_hour)
                && hours.node_dims().holds_over(first_hour, end_hour)
                && !hours.tag_folded_in(i, first_hour, end_hour))
                || !names(plan, known, |d| d == Dim::HourTag(i))
        })
}

/// Whether `filter` can be decided on a series key, exactly.
fn supported(filter: &Filter, known: &Known) -> bool {
    let text = |v: &Literal| matches!(v, Literal::Text(t) if !t.is_empty());
    let status_value = |v: &Literal| matches!(v, Literal::Text(t) if t == "ok" || t == "error");
    match filter {
        Filter::And(fs) | Filter::Or(fs) => fs.iter().all(|f| supported(f, known)),
        Filter::Not(f) => supported(f, known),
        Filter::Compare { field, op, value } => match Dim::of(field, known) {
            // The key's `unset`/`running` do not map one to one onto the
            // column, so only equality with ok/error is exact.
            Some(Dim::Status) => *op == Cmp::Eq && status_value(value),
            Some(Dim::Parent) | None => false,
            Some(_) => matches!(op, Cmp::Eq | Cmp::Ne) && text(value),
        },
        Filter::In { field, values } => match Dim::of(field, known) {
            Some(Dim::Status) => values.iter().all(status_value),
            Some(Dim::Parent) | None => false,
            Some(_) => values.iter().all(text),
        },
        Filter::Exists(field) => !matches!(Dim::of(field, known), Some(Dim::Status) | None),
        Filter::Contains { .. } | Filter::Text(_) | Filter::RunHas(_) => false,
    }
}

fn lit(v: &Literal) -> &str {
    match v {
        Literal::Text(t) => t.as_str(),
        _ => "",
    }
}

/// A filter with its fields resolved to the tier's dimensions once per
/// answer, not once per entry (and with `supported`'s operators only).
enum Test<'p> {
    And(Vec<Test<'p>>),
    Or(Vec<Test<'p>>),
    Not(Box<Test<'p>>),
    Eq(Dim, &'p str),
    Ne(Dim, &'p str),
    In(Dim, Vec<&'p str>),
    Exists(Dim),
    /// A field the tier does not hold: no span is kept.
    Never,
}

impl<'p> Test<'p> {
    fn of(filter: &'p Filter, known: &Known) -> Test<'p> {
        let dim = |f| Dim::of(f, known);
        match filter {
            Filter::And(fs) => Test::And(fs.iter().map(|f| Test::of(f, known)).collect()),
            Filter::Or(fs) => Test::Or(fs.iter().map(|f| Test::of(f, known)).collect()),
            Filter::Not(f) => Test::Not(Box::new(Test::of(f, known))),
            Filter::Compare { field, op, value } => match (dim(field), op) {
                (None, _) => Test::Never,
                (Some(d), Cmp::Eq) => Test::Eq(d, lit(value)),
                (Some(d), _) => Test::Ne(d, lit(value)),
            },
            Filter::In { field, values } => dim(field).map_or(Test::Never, |d| {
                Test::In(d, values.iter().map(lit).collect())
            }),
            Filter::Exists(field) => dim(field).map_or(Test::Never, Test::Exists),
            _ => Test::Never,
        }
    }

    /// Whether the spans of `node` in series `key` pass. Unset (`""`)
    /// never matches a comparison, as in a scan.
    fn matches(&self, key: &RollupKey, node: &NodeDims) -> bool {
        match self {
            Test::And(ts) => ts.iter().all(|t| t.matches(key, node)),
            Test::Or(ts) => ts.iter().any(|t| t.matches(key, node)),
            Test::Not(t) => !t.matches(key, node),
            Test::Eq(d, v) => {
                let x = d.value(key, node);
                !x.is_empty() && x == *v
            }
            Test::Ne(d, v) => {
                let x = d.value(key, node);
                !x.is_empty() && x != *v
            }
            Test::In(d, vs) => {
                let x = d.value(key, node);
                !x.is_empty() && vs.contains(&x)
            }
            Test::Exists(d) => !d.value(key, node).is_empty(),
            Test::Never => false,
        }
    }

    /// The test decided on a series key alone: `Some` when no node
    /// dimension can change the answer (then every node of the series is
    /// kept or none is), `None` when the nodes must be tested one by one.
    /// `no_node` is an empty [`NodeDims`].
    fn on_series(&self, key: &RollupKey, no_node: &NodeDims) -> Option<bool> {
        // `and` is decided by one false part, `or` by one true part;
        // otherwise by all parts decided alike.
        let junction = |ts: &[Test<'_>], deciding: bool| {
            let mut decided = true;
            for t in ts {
                match t.on_series(key, no_node) {
                    Some(v) if v == deciding => return Some(deciding),
                    Some(_) => {}
                    None => decided = false,
                }
            }
            decided.then_some(!deciding)
        };
        match self {
            Test::And(ts) => junction(ts, false),
            Test::Or(ts) => junction(ts, true),
            Test::Not(t) => t.on_series(key, no_node).map(|v| !v),
            Test::Eq(d, _) | Test::Ne(d, _) | Test::In(d, _) | Test::Exists(d) if d.on_node() => {
                None
            }
            leaf => Some(leaf.matches(key, no_node)),
        }
    }
}

/// The column an aggregate argument reads, as the tier holds it.
#[derive(Clone, Copy)]
enum Measure {
    Duration,
    InputTokens,
    OutputTokens,
    TotalTokens,
    Cost,
}

impl Measure {
    fn of(field: &FieldRef) -> Option<Measure> {
        let FieldRef::Column { name, .. } = field else {
            return None;
        };
        Some(match name.as_str() {
            column::DURATION => Measure::Duration,
            column::INPUT_TOKENS => Measure::InputTokens,
            column::OUTPUT_TOKENS => Measure::OutputTokens,
            column::TOTAL_TOKENS => Measure::TotalTokens,
            column::COST => Measure::Cost,
            _ => return None,
        })
    }

    /// Integer columns sum exactly (as i128); cost is a float column.
    fn is_int(self) -> bool {
        !matches!(self, Measure::Cost)
    }

    fn sum_count(self, m: &HourMeasures) -> SumCount {
        match self {
            Measure::Duration => m.duration,
            Measure::InputTokens => m.input_tokens,
            Measure::OutputTokens => m.output_tokens,
            Measure::TotalTokens => m.total_tokens,
            Measure::Cost => m.cost_pico,
        }
    }

    /// The sum in the column's unit.
    fn sum(self, m: &HourMeasures) -> f64 {
        match self {
            Measure::Cost => m.cost(),
            _ => self.sum_count(m).sum as f64,
        }
    }
}

/// Whether the plan's shape can be answered from the tier at all.
fn answerable(plan: &Plan, known: &Known) -> bool {
    plan.output == Output::Aggregates
        && plan.from_ns < plan.to_ns
        && (!names(plan, known, |d| {
            matches!(d, Dim::ErrorClass | Dim::ErrorSignature)
        }) || only_errors(plan.filter.as_ref()))
        && (!names(plan, known, |d| matches!(d, Dim::Name)) || only_children(plan.filter.as_ref()))
        && plan.filter.as_ref().is_none_or(|f| supported(f, known))
        && plan.group_by.iter().all(|g| match g {
            // Status groups are checked per series in `answer`.
            GroupKey::Field(f) => !matches!(Dim::of(f, known), Some(Dim::Parent) | None),
            GroupKey::Bucket { width_ns } => *width_ns > 0 && width_ns % HOUR_NS == 0,
        })
        && plan.aggregates.iter().all(|a| match a.kind {
            AggKind::Count | AggKind::ErrorRate | AggKind::SuccessRate => true,
            AggKind::Avg | AggKind::Sum => a.field.as_ref().and_then(Measure::of).is_some(),
            AggKind::Percentile(_) => {
                plan.approx_percentiles
                    && matches!(
                        a.field.as_ref().and_then(Measure::of),
                        Some(Measure::Duration)
                    )
            }
            _ => false,
        })
        && plan.sort.iter().all(|k| match &k.column {
            SortColumn::Output(name) => {
                plan.aggregates.iter().any(|a| &a.name == name)
                    || plan.group_by.iter().any(|g| &g.output_name() == name)
            }
            SortColumn::Field(_) => false,
        })
}

/// How a plan is answered from the tier: whole hours `[first_hour,
/// end_hour)` from it, and the `edges` (partial hours) by listing `fields`
/// of their spans.
pub struct RollupPlan {
    /// Whole hours `[first_hour, end_hour)` the tier answers.
    pub first_hour: i64,
    /// End of the whole hours (exclusive).
    pub end_hour: i64,
    /// Time ranges `[from, to)` to scan.
    pub edges: Vec<(i64, i64)>,
    /// The columns an edge listing returns, in this order: the group
    /// fields, then the status, start time, duration, tokens and cost.
    pub fields: Vec<FieldRef>,
}

impl RollupPlan {
    /// The listing of the spans of `plan` in the edge `[from_ns, to_ns)`:
    /// the rows [`answer`] folds in.
    pub fn edge_plan(&self, plan: &Plan, from_ns: i64, to_ns: i64) -> Plan {
        Plan {
            source: loupe_backend::plan::Source::Spans,
            from_ns,
            to_ns,
            filter: plan.filter.clone(),
            group_by: Vec::new(),
            aggregates: Vec::new(),
            sort: Vec::new(),
            limit: None,
            output: Output::Rows(self.fields.clone()),
            approx_percentiles: false,
        }
    }
}

/// The measure columns of an edge listing, after the group fields.
const EDGE_MEASURES: [(&str, ValueType); 7] = [
    (column::STATUS, ValueType::Text),
    (column::START_TIME, ValueType::Timestamp),
    (column::DURATION, ValueType::Duration),
    (column::INPUT_TOKENS, ValueType::Int),
    (column::OUTPUT_TOKENS, ValueType::Int),
    (column::TOTAL_TOKENS, ValueType::Int),
    (column::COST, ValueType::Float),
];

/// Whether (and how) the tier answers `plan`; `None` when only a scan can
/// answer exactly. `oldest_kept_ns`: start of the oldest whole day the
/// project's retention keeps (`i64::MIN` without retention).
pub(crate) fn prepare(rollups: &Rollups, plan: &Plan, oldest_kept_ns: i64) -> Option<RollupPlan> {
    prepare_over(
        &Known::of(rollups),
        plan,
        oldest_kept_ns,
        |first_hour, end_hour| tier_answers(rollups, plan, first_hour, end_hour),
    )
}

/// What `prepare` does, for a tier kept elsewhere: `tier_answers(first_hour,
/// end_hour)` says whether it counts every span of those hours with every
/// dimension the plan names.
pub fn prepare_over(
    known: &Known,
    plan: &Plan,
    oldest_kept_ns: i64,
    tier_answers: impl FnOnce(i64, i64) -> bool,
) -> Option<RollupPlan> {
    let first_hour =
        plan.from_ns.div_euclid(HOUR_NS) + i64::from(plan.from_ns.rem_euclid(HOUR_NS) != 0);
    let end_hour = plan.to_ns.div_euclid(HOUR_NS);
    if plan.from_ns < oldest_kept_ns
        || !answerable(plan, known)
        || !tier_answers(first_hour, end_hour)
    {
        return None;
    }
    if first_hour >= end_hour {
        // Not one whole hour: a scan reads no more than the edges would.
        return None;
    }
    let mut edges = Vec::new();
    if plan.from_ns < first_hour * HOUR_NS {
        edges.push((plan.from_ns, first_hour * HOUR_NS));
    }
    if end_hour * HOUR_NS < plan.to_ns {
        edges.push((end_hour * HOUR_NS, plan.to_ns));
    }
    // A status group reads the measures' status column (a listing may
    // not name one column twice).
    let mut fields: Vec<FieldRef> = plan
        .group_by
        .iter()
        .filter_map(|g| match g {
            GroupKey::Field(f) if !is_status(f) => Some(f.clone()),
            GroupKey::Field(_) | GroupKey::Bucket { .. } => None,
        })
        .collect();
    if fields
        .iter()
        .enumerate()
        .any(|(i, f)| fields[..i].contains(f))
    {
        return None;
    }
    fields.extend(EDGE_MEASURES.iter().map(|(name, ty)| FieldRef::Column {
        name: (*name).to_owned(),
        ty: *ty,
    }));
    Some(RollupPlan {
        first_hour,
        end_hour,
        edges,
        fields,
    })
}

/// The plan's answer: the tier's whole hours of `prepared`, plus the edge
/// spans (`edge_rows`, rows of `prepared.fields`). `None` if the tier can
/// no longer answer (it changed since `prepare`).
pub fn answer(
    known: &Known,
    slice: &HourSlice,
    project: &str,
    plan: &Plan,
    prepared: &RollupPlan,
    edge_rows: &[Vec<Value>],
) -> Option<QueryResult> {
    let by_status = plan
        .group_by
        .iter()
        .any(|g| matches!(g, GroupKey::Field(f) if matches!(Dim::of(f, known), Some(Dim::Status))));
    // Group → merged measures. A week holds ~10^5 series (168 hours × the
    // series of an hour); their group values are borrowed from the keys
    // and looked up with one scratch vector, so a series costs no
    // allocation, only the groups do (this runs under the store's lock).
    let percentiles = plan
        .aggregates
        .iter()
        .any(|a| matches!(a.kind, AggKind::Percentile(_)));
    let merge = |into: &mut HourMeasures, m: &HourMeasures| {
        if percentiles {
            into.merge(m);
        } else {
            into.merge_sums(m);
        }
    };
    let mut borrowed: HashMap<
        Vec<Option<GroupRef<'_>>>,
        HourMeasures,
        foldhash::fast::RandomState,
    > = HashMap::default();
    let mut scratch: Vec<Option<GroupRef<'_>>> = Vec::with_capacity(plan.group_by.len());
    let group_dims: Vec<Option<Dim>> = plan
        .group_by
        .iter()
        .map(|g| match g {
            GroupKey::Field(f) => Dim::of(f, known),
            GroupKey::Bucket { .. } => None,
        })
        .collect();
    let groups_on_node = group_dims.iter().flatten().any(|d| d.on_node());
    let no_node = NodeDims::default();
    let test = plan.filter.as_ref().map(|f| Test::of(f, known));
    // The filter is decided once per series where the key decides it (a
    // span kind, a tool, a label), and a series whose nodes all fall in
    // one group is merged into it once: with hour tags the nodes of a
    // series multiply by their values, and before this a week's answer
    // matched and merged every node (21 ms over 164k entries, 100k runs).
    for (hour, key, nodes) in slice.series() {
        if key.project != project {
            continue;
        }
        let verdict = test
            .as_ref()
            .map_or(Some(true), |t| t.on_series(key, &no_node));
        if verdict == Some(false) {
            continue;
        }
        let whole = verdict == Some(true) && !groups_on_node;
        let mut total = HourMeasures::default();
        for (node, m) in nodes {
            if m.spans == 0
                || (verdict.is_none() && test.as_ref().is_some_and(|t| !t.matches(key, node)))
            {
                continue;
            }
            if whole {
                merge(&mut total, m);
                continue;
            }
            // A series says `ok`/`error` exactly when the column does; its
            // `running`/`unset` also hold spans the column calls otherwise
            // (no status, unset, running without an end), so a status
            // group of such a series is left to a scan.
            if by_status && !matches!(key.status.as_str(), "ok" | "error") {
                return None;
            }
            group_key(&mut scratch, plan, &group_dims, hour, key, node);
            match borrowed.get_mut(scratch.as_slice()) {
                Some(into) => merge(into, m),
                None => {
                    let mut fresh = HourMeasures::default();
                    merge(&mut fresh, m);
                    borrowed.insert(scratch.clone(), fresh);
                }
            }
        }
        if whole && total.spans > 0 {
            if by_status && !matches!(key.status.as_str(), "ok" | "error") {
                return None;
            }
            group_key(&mut scratch, plan, &group_dims, hour, key, &no_node);
            match borrowed.get_mut(scratch.as_slice()) {
                Some(into) => merge(into, &total),
                None => {
                    borrowed.insert(scratch.clone(), total);
                }
            }
        }
    }
    let mut groups: BTreeMap<Vec<Option<GroupValue>>, HourMeasures> = borrowed
        .into_iter()
        .map(|(g, m)| (g.into_iter().map(|v| v.map(GroupRef::owned)).collect(), m))
        .collect();
    fold_edges(plan, prepared, edge_rows, &mut groups);
    if percentiles && !groups.values().all(HourMeasures::histogram_complete) {
        // Hours written before the tier kept histograms: scan instead.
        return None;
    }
    let mut columns: Vec<Column> = plan
        .group_by
        .iter()
        .map(|g| Column {
            name: g.output_name(),
            ty: match g {
                GroupKey::Field(f) => f.ty(),
                GroupKey::Bucket { .. } => ValueType::Timestamp,
            },
        })
        .collect();
    for a in &plan.aggregates {
        let int = a
            .field
            .as_ref()
            .and_then(Measure::of)
            .is_some_and(Measure::is_int);
        let duration = a
            .field
            .as_ref()
            .is_some_and(|f| f.ty() == ValueType::Duration);
        columns.push(Column {
            name: a.name.clone(),
            ty: match a.kind {
                AggKind::Count => ValueType::Int,
                AggKind::Sum if duration => ValueType::Duration,
                AggKind::Sum if int => ValueType::Int,
                _ => ValueType::Float,
            },
        });
    }
    // Without group keys a scan still answers one row (count 0, nulls).
    if plan.group_by.is_empty() && groups.is_empty() {
        groups.insert(Vec::new(), HourMeasures::default());
    }
    let mut rows: Vec<Vec<Value>> = groups
        .into_iter()
        .map(|(group, m)| {
            let mut row: Vec<Value> = group
                .into_iter()
                .map(|v| match v {
                    Some(GroupValue::Text(t)) => Value::from(t),
                    Some(GroupValue::Time(t)) => Value::from(t),
                    None => Value::Null,
                })
                .collect();
            row.extend(plan.aggregates.iter().map(|a| aggregate_value(a, &m)));
            row
        })
        .collect();
    let order: Vec<(usize, bool)> = plan
        .sort
        .iter()
        .filter_map(|k| {
            let SortColumn::Output(name) = &k.column else {
                return None;
            };
            columns
                .iter()
                .position(|c| &c.name == name)
                .map(|i| (i, k.descending))
        })
        .chain((0..plan.group_by.len()).map(|i| (i, false)))
        .collect();
    rows.sort_by(|a, b| {
        order
            .iter()
            .map(|&(i, desc)| compare(&a[i], &b[i], desc))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    });
    if let Some(n) = plan.limit {
        rows.truncate(usize::try_from(n).unwrap_or(usize::MAX));
    }
    Some(QueryResult {
        columns,
        rows,
        stats: QueryStats {
            rows_scanned: Some(0),
            from_rollups: true,
            approximate: percentiles,
            ..QueryStats::default()
        },
    })
}

/// The group of a (hour, series, node) into `scratch`: values borrowed
/// from the key and node, so a series costs no allocation.
fn group_key<'k>(
    scratch: &mut Vec<Option<GroupRef<'k>>>,
    plan: &Plan,
    group_dims: &[Option<Dim>],
    hour: i64,
    key: &'k RollupKey,
    node: &'k NodeDims,
) {
    scratch.clear();
    scratch.extend(plan.group_by.iter().zip(group_dims).map(|(g, d)| match g {
        GroupKey::Field(_) => d.and_then(|d| {
            let v = d.value(key, node);
            (!v.is_empty()).then_some(GroupRef::Text(v))
        }),
        GroupKey::Bucket { width_ns } => Some(GroupRef::Time(
            (hour * HOUR_NS).div_euclid(*width_ns) * width_ns,
        )),
    }));
}

/// Whether `f` is the status column.
fn is_status(f: &FieldRef) -> bool {
    matches!(f, FieldRef::Column { name, .. } if name == column::STATUS)
}

/// Adds the edge spans to their groups, with the measures the tier would
/// hold for them.
fn fold_edges(
    plan: &Plan,
    prepared: &RollupPlan,
    rows: &[Vec<Value>],
    groups: &mut BTreeMap<Vec<Option<GroupValue>>, HourMeasures>,
) {
    let measures_at = prepared.fields.len() - EDGE_MEASURES.len();
    let int = |v: Option<&Value>| v.and_then(Value::as_i64);
    for row in rows {
        let m = &row[measures_at..];
        let start = int(m.get(1));
        let mut field = 0;
        let group = plan
            .group_by
            .iter()
            .map(|g| match g {
                GroupKey::Field(f) => {
                    let v = if is_status(f) {
                        m.first().and_then(Value::as_str)
                    } else {
                        field += 1;
                        row.get(field - 1).and_then(Value::as_str)
                    };
                    v.filter(|v| !v.is_empty())
                        .map(|v| GroupValue::Text(v.to_owned()))
                }
                GroupKey::Bucket { width_ns } => {
                    start.map(|t| GroupValue::Time(t.div_euclid(*width_ns) * width_ns))
                }
            })
            .collect();
        let measures = HourMeasures::of_span_values(
            m.first().and_then(Value::as_str),
            int(m.get(2)),
            [int(m.get(3)), int(m.get(4)), int(m.get(5))],
            m.get(6).and_then(Value::as_f64),
        );
        groups.entry(group).or_default().merge(&measures);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum GroupValue {
    Text(String),
    Time(i64),
}

/// A [`GroupValue`] borrowed from a series' key while the tier is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum GroupRef<'a> {
    Text(&'a str),
    Time(i64),
}

impl GroupRef<'_> {
    fn owned(self) -> GroupValue {
        match self {
            GroupRef::Text(t) => GroupValue::Text(t.to_owned()),
            GroupRef::Time(t) => GroupValue::Time(t),
        }
    }
}

fn aggregate_value(a: &loupe_backend::plan::Aggregate, m: &HourMeasures) -> Value {
    let float = |x: f64| serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number);
    let ratio = |n: u64, d: u64| {
        if d == 0 {
            Value::Null
        } else {
            float(n as f64 / d as f64)
        }
    };
    match a.kind {
        AggKind::Count => Value::from(m.spans),
        AggKind::ErrorRate => ratio(m.errors, m.spans),
        AggKind::SuccessRate => ratio(m.ok, m.ok + m.errors),
        AggKind::Avg | AggKind::Sum => {
            let Some(measure) = a.field.as_ref().and_then(Measure::of) else {
                return Value::Null;
            };
            let SumCount { sum, count } = measure.sum_count(m);
            match (count, a.kind, measure.is_int()) {
                (0, _, _) => Value::Null,
                (_, AggKind::Avg, _) => float(measure.sum(m) / count as f64),
                (_, _, true) => i64::try_from(sum).map_or(Value::Null, Value::from),
                (_, _, false) => float(measure.sum(m)),
            }
        }
        AggKind::Percentile(q) => m.duration_quantile_ns(q).map_or(Value::Null, float),
        _ => Value::Null,
    }
}

/// Sort order of result cells: numbers numerically, text bytewise, nulls
/// last in both directions.
fn compare(a: &Value, b: &Value, descending: bool) -> Ordering {
    let ord = match (a, b) {
        (Value::Null, Value::Null) => return Ordering::Equal,
        (Value::Null, _) => return Ordering::Greater,
        (_, Value::Null) => return Ordering::Less,
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => x
                .as_f64()
                .unwrap_or(f64::NAN)
                .total_cmp(&y.as_f64().unwrap_or(f64::NAN)),
        },
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ => a.to_string().cmp(&b.to_string()),
    };
    if descending { ord.reverse() } else { ord }
}
