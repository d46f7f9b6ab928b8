//! Round trip: generated runs → Dify rows ([`super::run_rows`]) → spans
//! ([`crate::map`]) must give back the generated spans, field for field,
//! for every field a Dify row holds.

use std::collections::HashMap;

use loupe_gen::GenConfig;
use loupe_model::Span;

use super::*;
use crate::map::{node_spans, run_span};

/// The fields a Dify row carries, as one comparable value (`Debug` text so
/// a failure shows both sides).
fn facts(s: &Span) -> String {
    format!(
        "kind={:?} node_type={:?} name={:?} status={:?} error={:?} start={:?} end={:?} \
         input={:?} output={:?} tokens={:?} model={:?}/{:?} cost={:?} {:?} app={:?} {:?} \
         workflow={:?} version={:?} user={:?} run={:?} tool={:?} session={:?}",
        s.span_kind,
        s.node_type,
        s.name,
        s.status,
        s.error_message,
        s.start_time,
        s.end_time,
        s.input,
        s.output,
        s.total_tokens,
        s.model_provider,
        s.model_name,
        s.cost,
        s.currency,
        s.app_id,
        s.app_name,
        s.workflow_id,
        s.workflow_version,
        s.user_id,
        s.run_id,
        s.tool_name,
        s.session_id,
    )
}

#[test]
fn rows_written_from_spans_map_back_to_the_same_spans() {
    let config = GenConfig {
        runs: 300,
        ..GenConfig::default()
    };
    let (mut chat, mut workflow, mut nodes_seen) = (0, 0, 0);
    for generated in loupe_gen::runs(&config) {
        let rows = run_rows(&generated.spans, &generated.inputs).expect("a workflow span");
        let lookups = rows.lookups();
        let root = run_span(&config.project, &rows.run, rows.log.as_ref(), &lookups);
        let mapped_nodes = node_spans(
            &config.project,
            &rows.run,
            rows.nodes.clone(),
            &[],
            &lookups,
        );
        let original_root = generated
            .spans
            .iter()
            .find(|s| s.span_kind == Some(loupe_model::SpanKind::Workflow))
            .expect("root");
        let mut want = original_root.clone();
        // The row stores the run's inputs as Dify does; the generator's
        // root span carries the same JSON.
        want.input = Some(generated.inputs.to_string());
        // No run column holds a session: a chatflow's comes from its
        // message row (not written here), a workflow run has none in Dify.
        want.session_id = None;
        // No column holds the root's name: the mapping names it by the
        // run type, as Dify's Langfuse provider does.
        want.name = Some("workflow".into());
        assert_eq!(facts(&root), facts(&want));
        assert_eq!(root.span_id, generated.run_id);
        if rows.run.run_type == "chat" {
            chat += 1;
            assert_eq!(
                root.trace_id, None,
                "a chatflow run hangs under its message"
            );
        } else {
            workflow += 1;
            assert_eq!(root.trace_id.as_deref(), Some(generated.run_id.as_str()));
            assert!(rows.log.is_some());
        }
        let by_exec: HashMap<&str, &Span> = generated
            .spans
            .iter()
            .filter(|s| s.node_type.is_some())
            .map(|s| {
                let exec = s
                    .attributes
                    .get("metadata.node_execution_id")
                    .map_or(s.span_id.as_str(), String::as_str);
                (exec, s)
            })
            .collect();
        assert_eq!(mapped_nodes.len(), by_exec.len());
        for node in &mapped_nodes {
            let original = by_exec
                .get(node.span_id.as_str())
                .unwrap_or_else(|| panic!("node {} was not generated", node.span_id));
            let mut want = (*original).clone();
            // A node row has no user, version or session (see the root).
            want.user_id = None;
            want.session_id = None;
            want.workflow_version = None;
            if let Some(tool) = want.tool_name.take() {
                // The mapping names a tool by its node title, as Dify's
                // Langfuse provider does; the tool itself is kept in
                // `execution_metadata.tool_info.provider_id`.
                want.tool_name = want.name.clone();
                let info = node.attributes.get("dify.metadata.tool_info");
                let info: serde_json::Value =
                    serde_json::from_str(info.map_or("null", String::as_str)).expect("json");
                assert_eq!(info["provider_id"].as_str(), Some(tool.as_str()));
            }
            assert_eq!(facts(node), facts(&want));
            assert_eq!(
                node.parent_span_id.as_deref(),
                Some(generated.run_id.as_str())
            );
            nodes_seen += 1;
        }
    }
    assert!(
        chat > 0 && workflow > 0,
        "both run types: {chat} chat, {workflow} workflow"
    );
    assert!(nodes_seen > 1000, "{nodes_seen} nodes");
}

#[test]
fn naive_is_the_inverse_of_utc_ns() {
    for ns in [0, 1_500_000_999, 1_767_225_600_123_456_789] {
        assert_eq!(crate::schema::utc_ns(naive(ns)), ns);
    }
    assert_eq!(uuid_of("x").len(), 36);
    assert_eq!(uuid_of("x"), uuid_of("x"));
    assert_ne!(uuid_of("x"), uuid_of("y"));
}
