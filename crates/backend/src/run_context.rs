//! The run context: run-level fields (run id, app, workflow, user,
//! session, business tags) that a trace's root spans (and, for tags, any
//! span) contribute and every span of the trace is filled with where unset.
//!
//! Both backends apply these rules on write, so `tags.category = phone`
//! matches the tool spans of a phone run whatever order the spans arrived
//! in: the embedded store keeps a context per trace in memory, the
//! ClickHouse backend rebuilds it from the trace's stored rows.

use loupe_model::{Span, SpanKind, Tags};

/// Run-level fields of one trace, shared by all its spans.
///
/// Contributed by the run's root spans (no parent, or kind `workflow`) and,
/// for tags, by any span; filled into every span of the trace where unset.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunContext {
    /// The run id (a real one beats the trace-id fallback; a `workflow` span's beats a plain root's).
    pub run_id: Option<String>,
    /// Session id of the run.
    pub session_id: Option<String>,
    /// End user of the run.
    pub user_id: Option<String>,
    /// App of the run.
    pub app_id: Option<String>,
    /// App name of the run.
    pub app_name: Option<String>,
    /// Workflow of the run.
    pub workflow_id: Option<String>,
    /// Workflow version of the run.
    pub workflow_version: Option<String>,
    /// Business tags found on any span of the trace.
    pub tags: Tags,
    /// Run ids this context held before a better one replaced them (a
    /// Dify chatflow root carries the message id, its workflow span the
    /// workflow run id); spans still carrying one are re-filled.
    pub replaced_run_ids: Vec<String>,
    /// Whether `run_id` came from a `workflow`-kind span (the best source).
    pub run_from_workflow: bool,
}

/// Whether a span can change its trace's context.
pub fn may_contribute(span: &Span) -> bool {
    is_run_root(span) || !span.tags.is_empty()
}

fn is_run_root(span: &Span) -> bool {
    span.parent_span_id.is_none() || span.span_kind == Some(SpanKind::Workflow)
}

/// A `run_id` equal to the trace id is a fallback, not a real run id.
fn is_fallback_run(span_run: &Option<String>, trace: &Option<String>) -> bool {
    span_run.is_none() || span_run == trace
}

impl RunContext {
    /// Takes what the span says about its run. Returns whether anything changed.
    pub fn absorb(&mut self, span: &Span) -> bool {
        let mut changed = false;
        if is_run_root(span) {
            let mut set = |slot: &mut Option<String>, value: &Option<String>| {
                if value.is_some() && slot.is_none() {
                    *slot = value.clone();
                    changed = true;
                }
            };
            set(&mut self.session_id, &span.session_id);
            set(&mut self.user_id, &span.user_id);
            set(&mut self.app_id, &span.app_id);
            set(&mut self.app_name, &span.app_name);
            set(&mut self.workflow_id, &span.workflow_id);
            set(&mut self.workflow_version, &span.workflow_version);
            // A real run id (not the trace-id fallback) replaces a fallback,
            // and a workflow span's run id replaces a plain root's.
            let is_workflow = span.span_kind == Some(SpanKind::Workflow);
            let better = !is_fallback_run(&span.run_id, &span.trace_id)
                && span.run_id != self.run_id
                && (is_fallback_run(&self.run_id, &span.trace_id)
                    || (is_workflow && !self.run_from_workflow));
            if better || (self.run_id.is_none() && span.run_id.is_some()) {
                if let Some(old) = self.run_id.take() {
                    self.replaced_run_ids.push(old);
                }
                self.run_id = span.run_id.clone();
                self.run_from_workflow = is_workflow;
                changed = true;
            } else if let Some(r) = &span.run_id
                && self.run_from_workflow
                && Some(r) != self.run_id.as_ref()
                && !self.replaced_run_ids.contains(r)
            {
                // A root arriving after the workflow span loses the same way.
                self.replaced_run_ids.push(r.clone());
            }
        }
        for (k, v) in &span.tags {
            if self.tags.get(k) != Some(v) {
                self.tags.insert(k.clone(), v.clone());
                changed = true;
            }
        }
        changed
    }

    /// Fills unset run-level fields of a span. Returns whether it changed.
    pub fn fill(&self, span: &mut Span) -> bool {
        let mut changed = false;
        let mut fill = |slot: &mut Option<String>, value: &Option<String>| {
            if slot.is_none() && value.is_some() {
                *slot = value.clone();
                changed = true;
            }
        };
        fill(&mut span.session_id, &self.session_id);
        fill(&mut span.user_id, &self.user_id);
        fill(&mut span.app_id, &self.app_id);
        fill(&mut span.app_name, &self.app_name);
        fill(&mut span.workflow_id, &self.workflow_id);
        fill(&mut span.workflow_version, &self.workflow_version);
        if self.run_id.is_some()
            && span.run_id != self.run_id
            && (is_fallback_run(&span.run_id, &span.trace_id)
                || span
                    .run_id
                    .as_ref()
                    .is_some_and(|r| self.replaced_run_ids.contains(r)))
        {
            span.run_id = self.run_id.clone();
            changed = true;
        }
        for (k, v) in &self.tags {
            if !span.tags.contains_key(k) {
                span.tags.insert(k.clone(), v.clone());
                changed = true;
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loupe_model::Span;

    #[test]
    fn context_from_root_fills_children_and_replaces_fallback_run_ids() {
        let mut root = Span::new("p", "root");
        root.trace_id = Some("t".into());
        root.run_id = Some("run-1".into());
        root.workflow_id = Some("wf".into());
        root.tags.insert("category".into(), "phone".into());
        let mut child = Span::new("p", "c");
        child.trace_id = Some("t".into());
        child.parent_span_id = Some("root".into());
        child.run_id = Some("t".into());
        child.workflow_id = Some("own".into());
        let mut ctx = RunContext::default();
        assert!(ctx.absorb(&root));
        assert!(!ctx.absorb(&root), "absorbing twice changes nothing");
        assert!(
            !ctx.absorb(&child),
            "a non-root without tags contributes nothing"
        );
        assert!(ctx.fill(&mut child));
        assert_eq!(child.run_id.as_deref(), Some("run-1"));
        assert_eq!(child.workflow_id.as_deref(), Some("own"), "own values win");
        assert_eq!(
            child.tags.get("category").map(String::as_str),
            Some("phone")
        );
    }

    #[test]
    fn a_workflow_spans_run_id_replaces_the_chatflow_roots_message_id() {
        let mut root = Span::new("p", "root");
        root.trace_id = Some("t".into());
        root.run_id = Some("message-1".into());
        let mut workflow = Span::new("p", "wf");
        workflow.trace_id = Some("t".into());
        workflow.parent_span_id = Some("root".into());
        workflow.span_kind = Some(SpanKind::Workflow);
        workflow.run_id = Some("run-1".into());
        let mut ctx = RunContext::default();
        ctx.absorb(&root);
        assert!(ctx.absorb(&workflow));
        assert_eq!(ctx.run_id.as_deref(), Some("run-1"));
        assert!(ctx.fill(&mut root), "the root is re-filled");
        assert_eq!(root.run_id.as_deref(), Some("run-1"));
        // The same when the root arrives after the workflow span.
        let mut late = RunContext::default();
        late.absorb(&workflow);
        let mut root2 = root.clone();
        root2.run_id = Some("message-1".into());
        late.absorb(&root2);
        assert!(late.fill(&mut root2));
        assert_eq!(root2.run_id.as_deref(), Some("run-1"));
    }
}
