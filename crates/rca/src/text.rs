//! Plain sentences: each finding, each co-occurrence, the headline, and the
//! terminal report of `loupe rca`.

use std::fmt::Write;

use loupe_model::time::format_instant;

use crate::{Condition, Finding, RcaReport};

/// A query-language filter selecting the conditions (values quoted).
pub fn filter_text(conds: &[Condition]) -> String {
    conds
        .iter()
        .map(|c| format!("{}={}", c.field, quote(&c.value)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A double-quoted string literal of the query language.
fn quote(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for ch in v.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn pct(x: f64) -> String {
    let p = x * 100.0;
    if p >= 10.0 || p == 0.0 {
        format!("{p:.0} %")
    } else if p >= 1.0 {
        format!("{p:.1} %")
    } else {
        format!("{p:.2} %")
    }
}

fn conds_text(conds: &[Condition]) -> String {
    conds
        .iter()
        .map(|c| {
            let field = c.field.strip_prefix("tags.").unwrap_or(&c.field);
            format!("{field}={}", c.value)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn lift_text(lift: f64) -> String {
    if lift >= 10.0 {
        format!("{lift:.0}×")
    } else {
        format!("{lift:.1}×")
    }
}

/// Hours and minutes of an instant (UTC), or the full time when the
/// report spans days.
fn at(ns: i64) -> String {
    format_instant(ns)
}

fn finding_sentence(f: &Finding, target: &str) -> String {
    let mut s = String::new();
    match f.share_of_change {
        Some(share) => {
            let _ = write!(s, "{} of the extra `{target}` spans", pct(share));
        }
        None => {
            let _ = write!(s, "{} of the `{target}` spans", pct(f.share_of_target));
        }
    }
    let _ = write!(
        s,
        " are {}: {} of {} ({}) in the window vs {} in the baseline, {} the baseline rate",
        conds_text(&f.conditions),
        f.window.target,
        f.window.spans,
        pct(f.window.rate),
        pct(f.baseline.rate),
        lift_text(f.lift),
    );
    match (f.started_ns, f.ended_ns) {
        (Some(a), Some(b)) => {
            let _ = write!(s, "; from {} to {}", at(a), at(b));
        }
        (Some(a), None) => {
            let _ = write!(s, "; since {}", at(a));
        }
        _ => {}
    }
    s.push('.');
    s
}

/// Fills every sentence and the headline.
pub fn write_sentences(report: &mut RcaReport) {
    let target = report.target.clone();
    for f in &mut report.findings {
        f.sentence = finding_sentence(f, &target);
    }
    for c in &mut report.co_occurrence {
        c.sentence = format!(
            "In {} runs `{}` and `{}` failed together ({} of the runs where `{}` failed); `{}` came first in {}.",
            c.runs,
            c.first,
            c.then,
            pct(c.given_first),
            c.first,
            c.first,
            pct(c.first_precedes),
        );
    }
    let (w, b) = (report.window_totals, report.baseline_totals);
    let change = format!(
        "`{target}` was {} of `{}` spans in the window ({} of {}) vs {} in the baseline ({} of {})",
        pct(w.rate),
        report.scope,
        w.target,
        w.spans,
        pct(b.rate),
        b.target,
        b.spans,
    );
    report.headline = match report.findings.first() {
        Some(top) => format!("{change}. Top cause: {}", top.sentence),
        None if b.spans == 0 => {
            format!("{change}. There is no baseline data, and no value stands out.")
        }
        None => format!(
            "{change}. No dimension value or pair changed significantly: nothing to report."
        ),
    };
}

/// The report as text for a terminal.
pub fn render_text(r: &RcaReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Root-cause analysis of `{}` in `{}`\n  window   {} → {}\n  baseline {} → {}\n",
        r.target,
        r.scope,
        at(r.window.from_ns),
        at(r.window.to_ns),
        at(r.baseline.from_ns),
        at(r.baseline.to_ns),
    );
    let _ = writeln!(out, "{}\n", r.headline);
    if r.findings.is_empty() {
        let _ = writeln!(out, "No findings.");
    }
    for (i, f) in r.findings.iter().enumerate() {
        let _ = writeln!(out, "{}. {}", i + 1, f.sentence);
        let _ = writeln!(
            out,
            "   excess {:.0} spans (expected {:.1}), p = {:.1e}; filter: {}",
            f.excess, f.expected, f.p_value, f.filter
        );
        for e in &f.exemplars {
            let _ = writeln!(
                out,
                "   run {}{}",
                e.run_id,
                e.error_message
                    .as_deref()
                    .map(|m| format!(": {}", m.chars().take(120).collect::<String>()))
                    .unwrap_or_default()
            );
            if !e.path.is_empty() {
                let _ = writeln!(out, "     path: {}", e.path.join(" → "));
            }
        }
        out.push('\n');
    }
    if !r.co_occurrence.is_empty() {
        let _ = writeln!(out, "Failures that happen together:");
        for c in &r.co_occurrence {
            let _ = writeln!(out, "  - {}", c.sentence);
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "{} queries ({} from rollups), {} candidates, {} ms (read {} ms, attribution {} ms, details {} ms: change points {} ms, exemplars {} ms, co-occurrence {} ms, at once)",
        r.stats.queries,
        r.stats.from_rollups,
        r.stats.candidates,
        r.stats.elapsed_ms,
        r.stats.read_ms,
        r.stats.attribution_ms,
        r.stats.details_ms,
        r.stats.when_ms,
        r.stats.exemplars_ms,
        r.stats.co_occurrence_ms
    );
    out
}
