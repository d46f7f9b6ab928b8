//! Parents and traces of Dify's export, resolved to Dify's ids.
//!
//! [`super::normalise`] maps one span at a time: it gives a span of Dify's
//! export its Dify id (see `dify_export`) but its parent is still the OTLP
//! id as sent. [`link`] finishes the request: parents that name a span of
//! the same request, or one seen recently ([`IdCache`]), become that span's
//! Dify id, and spans whose own attributes name no run (iteration wrappers,
//! nodes of the per-span adapter) take the run and trace of their OTLP trace.
//!
//! A late child trace (Dify 1.19+ attaches a called workflow's steps under
//! the invoking tool span, in a request of their own) joins the trace of
//! the span it hangs under, so the run view shows it there; a nested run
//! keeps its own run id, as the database sync gives it.
//!
//! The cache is memory only and bounded: after a restart, a child whose
//! parent arrived before keeps the OTLP parent id (the run view then shows
//! it at the top level). Dify's newer export sends a whole trace per
//! request, so this matters only for the per-span adapter and late traces.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Mutex;

use loupe_model::Span;
use lru::LruCache;

/// Where a span of Dify's export went: its Dify span id, trace and run.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Placed {
    span: String,
    trace: Option<String>,
    run: Option<String>,
}

/// A trace of Dify's export: its Dify trace id and run.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TracePlaced {
    trace: String,
    run: Option<String>,
}

/// (project, OTLP trace id, OTLP span id).
type SpanKey = (String, String, String);
/// (project, OTLP trace id).
type TraceKey = (String, String);

/// Recently placed spans and traces of Dify's export, by their OTLP ids.
/// Shared by every ingest request of a server; bounded (least recently used
/// entries leave first).
pub struct IdCache {
    inner: Mutex<Caches>,
}

struct Caches {
    spans: LruCache<SpanKey, Placed>,
    traces: LruCache<TraceKey, TracePlaced>,
    /// OTLP traces with a span stored under another id: their other spans
    /// (an `ENABLE_OTEL` node's HTTP and database children, which carry no
    /// Dify marker) may name it as their parent.
    rekeyed: LruCache<TraceKey, ()>,
}

impl IdCache {
    /// A cache of at most `spans` spans (and a fifth as many traces).
    pub fn new(spans: usize) -> Self {
        let spans = NonZeroUsize::new(spans.max(1)).unwrap_or(NonZeroUsize::MIN);
        let traces = NonZeroUsize::new((spans.get() / 5).max(1)).unwrap_or(NonZeroUsize::MIN);
        Self {
            inner: Mutex::new(Caches {
                spans: LruCache::new(spans),
                traces: LruCache::new(traces),
                rekeyed: LruCache::new(traces),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Caches> {
        // A panic while holding the lock leaves plain maps behind: still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl std::fmt::Debug for IdCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let caches = self.lock();
        f.debug_struct("IdCache")
            .field("spans", &caches.spans.len())
            .field("traces", &caches.traces.len())
            .finish()
    }
}

impl Default for IdCache {
    /// 100,000 spans (about 30 MB at most).
    fn default() -> Self {
        Self::new(100_000)
    }
}

/// The OTLP ids a span was sent with: (trace, span).
fn sent_ids(span: &Span) -> (String, String) {
    let trace = span
        .attributes
        .get("otel.trace_id")
        .or(span.trace_id.as_ref())
        .cloned()
        .unwrap_or_default();
    let id = span
        .attributes
        .get("otel.span_id")
        .cloned()
        .unwrap_or_else(|| span.span_id.clone());
    (trace, id)
}

fn is_export(span: &Span) -> bool {
    span.attributes.contains_key("otel.span_id")
}

/// A node span of the Phoenix/Arize provider, stored under the execution id
/// its `metadata.node_id` names (see `dify_export`).
fn is_phoenix_node(span: &Span) -> bool {
    span.attributes.get("metadata.node_id") == Some(&span.span_id)
}

/// Resolves the parents, traces and runs of the export's spans in one
/// request (see the module docs). Spans of other sources are untouched.
pub fn link(spans: &mut [Span], cache: Option<&IdCache>) {
    if !spans.iter().any(is_export) {
        if let Some(cache) = cache {
            reparent_children(spans, &HashMap::new(), &mut cache.lock());
        }
        return;
    }
    let mut placed: HashMap<SpanKey, Placed> = HashMap::new();
    let mut traces: HashMap<TraceKey, TracePlaced> = HashMap::new();
    for span in spans.iter().filter(|s| is_export(s)) {
        let (key, place, trace) = placement(span);
        placed.insert(key, place);
        if let Some((key, place)) = trace {
            traces.entry(key).or_insert(place);
        }
    }

    let mut caches = cache.map(IdCache::lock);
    // Late child traces: OTLP trace → the trace and run they join.
    let mut joins: HashMap<TraceKey, TracePlaced> = HashMap::new();
    // Phoenix/Arize node spans whose parent (the workflow span) is not
    // known yet: the provider sends it last, after every node.
    let mut orphans: Vec<usize> = Vec::new();
    for (i, span) in spans.iter_mut().enumerate().filter(|(_, s)| is_export(s)) {
        let Some(parent) = span.parent_span_id.clone() else {
            continue;
        };
        let (trace, _) = sent_ids(span);
        let key = (span.project.clone(), trace.clone(), parent);
        // A parent from an earlier request may be in another trace: the
        // span's request then joins it (a late child trace).
        let (parent, earlier) = match placed.get(&key) {
            Some(parent) => (parent.clone(), false),
            None => match caches.as_mut().and_then(|c| c.spans.get(&key).cloned()) {
                Some(parent) => (parent, true),
                None => {
                    if is_phoenix_node(span) {
                        orphans.push(i);
                    }
                    continue;
                }
            },
        };
        span.parent_span_id = Some(parent.span.clone());
        if let Some(parent_trace) = parent.trace
            && earlier
            && span.trace_id.as_ref() != Some(&parent_trace)
        {
            joins.insert(
                (span.project.clone(), trace),
                TracePlaced {
                    trace: parent_trace,
                    run: parent.run,
                },
            );
        }
    }

    for (i, span) in spans.iter_mut().enumerate().filter(|(_, s)| is_export(s)) {
        let (trace, _) = sent_ids(span);
        let key = (span.project.clone(), trace.clone());
        let known = joins.get(&key).cloned().or_else(|| {
            if span.attributes.contains_key("otel.trace_id") {
                return None;
            }
            traces
                .get(&key)
                .cloned()
                .or_else(|| caches.as_mut().and_then(|c| c.traces.get(&key).cloned()))
        });
        if let Some(known) = known {
            adopt(span, &trace, &known);
            // The workflow span is the run's span, stored under the run id
            // (what the database sync gives a node as its parent outside
            // iterations and loops).
            if orphans.contains(&i)
                && let Some(run) = &known.run
            {
                span.parent_span_id = Some(run.clone());
            }
        }
    }

    if let Some(caches) = caches.as_mut() {
        for span in spans.iter().filter(|s| is_export(s)) {
            let (key, place, trace) = placement(span);
            if place.span != key.2 {
                caches.rekeyed.put((key.0.clone(), key.1.clone()), ());
            }
            caches.spans.put(key, place);
            if let Some((key, place)) = trace {
                caches.traces.put(key, place);
            }
        }
        reparent_children(spans, &placed, caches);
    } else {
        reparent_children(spans, &placed, &mut Caches::empty());
    }
}

impl Caches {
    /// Nothing cached (a request linked on its own).
    fn empty() -> Self {
        Self {
            spans: LruCache::new(NonZeroUsize::MIN),
            traces: LruCache::new(NonZeroUsize::MIN),
            rekeyed: LruCache::new(NonZeroUsize::MIN),
        }
    }
}

/// Spans without Dify's markers whose parent was stored under Dify's id
/// (an `ENABLE_OTEL` node's HTTP client and database spans): the parent is
/// that id. Looked up only for OTLP traces known to hold such a span, so
/// other traffic pays one set lookup per trace.
fn reparent_children(spans: &mut [Span], placed: &HashMap<SpanKey, Placed>, caches: &mut Caches) {
    let placed_traces: std::collections::HashSet<(&str, &str)> = placed
        .iter()
        .filter(|(k, p)| p.span != k.2)
        .map(|(k, _)| (k.0.as_str(), k.1.as_str()))
        .collect();
    let mut known: HashMap<TraceKey, bool> = HashMap::new();
    for span in spans.iter_mut().filter(|s| !is_export(s)) {
        let (Some(parent), Some(trace)) = (&span.parent_span_id, &span.trace_id) else {
            continue;
        };
        let tkey = (span.project.clone(), trace.clone());
        let rekeyed = *known.entry(tkey).or_insert_with_key(|k| {
            placed_traces.contains(&(k.0.as_str(), k.1.as_str())) || caches.rekeyed.get(k).is_some()
        });
        if !rekeyed {
            continue;
        }
        let key = (span.project.clone(), trace.clone(), parent.clone());
        let found = placed
            .get(&key)
            .map(|p| p.span.clone())
            .or_else(|| caches.spans.get(&key).map(|p| p.span.clone()));
        if let Some(id) = found {
            span.parent_span_id = Some(id);
        }
    }
}

/// Where a span of the export went, by its OTLP ids, and where its OTLP
/// trace went when the span named the trace's Dify id.
fn placement(span: &Span) -> (SpanKey, Placed, Option<(TraceKey, TracePlaced)>) {
    let (trace, id) = sent_ids(span);
    let rewritten_trace = span.attributes.contains_key("otel.trace_id");
    let place = Placed {
        span: span.span_id.clone(),
        trace: span.trace_id.clone().filter(|_| rewritten_trace),
        run: span.run_id.clone(),
    };
    let trace_place = span.trace_id.clone().filter(|_| rewritten_trace).map(|t| {
        (
            (span.project.clone(), trace.clone()),
            TracePlaced {
                trace: t,
                run: span.run_id.clone(),
            },
        )
    });
    ((span.project.clone(), trace, id), place, trace_place)
}

/// Puts `span` in `place`'s trace, and its run when the span names none.
fn adopt(span: &mut Span, sent_trace: &str, place: &TracePlaced) {
    if span.trace_id.as_deref() != Some(place.trace.as_str()) {
        span.attributes
            .entry("otel.trace_id".into())
            .or_insert_with(|| sent_trace.to_owned());
        span.trace_id = Some(place.trace.clone());
    }
    if span.run_id.is_none() {
        span.run_id.clone_from(&place.run);
    }
}
