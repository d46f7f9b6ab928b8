//! What a rule would have done over past data (the console's rule editor,
//! `POST /api/v1/alerts/rules/preview`).
//!
//! The caller pushes the stored spans the rule may read, in start-time
//! order; the [`Previewer`] replays them into fresh per-minute rollups as
//! the live engine sees them (a span counts from its end time) and runs the
//! real [`Evaluator`] on them every `step` from `from` to `to`. So the
//! answer follows the engine's semantics exactly (window, `for`, `no_data`,
//! groups, event streaks) at the step's resolution instead of the engine's
//! `interval`; silences, notices and actions are not involved. Memory stays
//! bounded: only the rule's window of minutes is kept, plus the spans that
//! have started but not yet ended at the current step.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use loupe_model::Span;
use loupe_rollup::{RollupConfig, Rollups};
use serde::Serialize;

use crate::eval::{AlertState, Evaluator, NoticeState, group_values, metric_value};
use crate::rules::filter::Selector;
use crate::rules::{Op, Rule, RuleType};

const MINUTE_MS: i64 = 60_000;
/// Evaluations per preview at most: a long window is evaluated less often.
const MAX_EVALUATIONS: i64 = 2_000;
/// Transitions listed at most (the counts stay exact).
const MAX_LISTED: usize = 200;
/// Points of the value series at most.
const MAX_POINTS: usize = 240;

/// One transition of the preview.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    /// When (ms since the epoch): the evaluation that saw it.
    pub at_ms: i64,
    /// `firing` or `resolved`.
    pub state: &'static str,
    /// The group (`k=v, …`, `-` without group-by).
    pub group: String,
    /// The metric's value then (`None`: no data).
    pub value: Option<f64>,
}

/// The answer of a preview.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Preview {
    /// Start of the previewed range, ms.
    pub from_ms: i64,
    /// End of the range, ms.
    pub to_ms: i64,
    /// Time between evaluations, ms.
    pub step_ms: i64,
    /// Evaluations made.
    pub evaluations: u64,
    /// Spans read.
    pub spans: u64,
    /// Times an alert started firing (each group counts).
    pub fired: u64,
    /// Times an alert resolved.
    pub resolved: u64,
    /// Alerts still firing at the end.
    pub firing_at_end: u64,
    /// The first transitions, in time order (at most 200).
    pub transitions: Vec<Transition>,
    /// The worst group's value per evaluation (threshold rules; the
    /// largest for `>`/`>=`, the smallest for `<`/`<=`), thinned to at most
    /// 240 points: `[at_ms, value]`.
    pub series: Vec<(i64, Option<f64>)>,
    /// The rule's threshold as a number (threshold rules).
    pub threshold: Option<f64>,
}

/// A span waiting for its end time to be reached.
struct Waiting {
    at_ms: i64,
    seq: u64,
    span: Span,
}

impl PartialEq for Waiting {
    fn eq(&self, other: &Self) -> bool {
        (self.at_ms, self.seq) == (other.at_ms, other.seq)
    }
}
impl Eq for Waiting {}
impl PartialOrd for Waiting {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiting {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at_ms, self.seq).cmp(&(other.at_ms, other.seq))
    }
}

/// Replays spans into rollups and evaluates one rule over a past range.
pub struct Previewer {
    rule: Rule,
    selector: Selector,
    rollups: Rollups,
    eval: Evaluator,
    waiting: BinaryHeap<Reverse<Waiting>>,
    seq: u64,
    next_ms: i64,
    out: Preview,
    every_point: Vec<(i64, Option<f64>)>,
}

/// The time between evaluations for `rule` over `range`: a minute, or
/// longer so that at most 2,000 evaluations are made.
pub fn step_for(range: Duration) -> Duration {
    let range_minutes = (range.as_millis() as u64) / MINUTE_MS as u64;
    let minutes = range_minutes.div_ceil(MAX_EVALUATIONS as u64).max(1);
    Duration::from_millis(minutes * MINUTE_MS as u64)
}

/// How far before the first evaluation spans are read: the rule's window
/// (threshold) or `within` (event).
pub fn lookback(rule: &Rule) -> Duration {
    match rule.kind {
        RuleType::Threshold => rule.window,
        RuleType::Event => rule.within,
        // A gauge has no past in the spans (the API refuses to preview it).
        RuleType::Gauge => Duration::ZERO,
    }
}

impl Previewer {
    /// A preview of `rule` (validated, with its project set) evaluated
    /// every `step` in `[from_ms, to_ms]`; `labels` are `[metrics] labels`.
    pub fn new(rule: Rule, labels: Vec<String>, from_ms: i64, to_ms: i64, step: Duration) -> Self {
        let mut rule = rule;
        // A preview counts firings; reminders of a firing alert are not new ones.
        rule.repeat_interval = Duration::ZERO;
        let window_minutes = (lookback(&rule).as_millis() as i64 / MINUTE_MS) as usize;
        let rollups = Rollups::new(RollupConfig {
            labels: labels.clone(),
            minutes_kept: window_minutes + 2,
            ..RollupConfig::default()
        });
        let step_ms = (step.as_millis() as i64).max(MINUTE_MS);
        Self {
            selector: Selector::new(&rule, &labels),
            eval: Evaluator::new(AlertState::default(), labels, String::new()),
            rule,
            rollups,
            waiting: BinaryHeap::new(),
            seq: 0,
            next_ms: from_ms,
            every_point: Vec::new(),
            out: Preview {
                from_ms,
                to_ms,
                step_ms,
                evaluations: 0,
                spans: 0,
                fired: 0,
                resolved: 0,
                firing_at_end: 0,
                transitions: Vec::new(),
                series: Vec::new(),
                threshold: None,
            },
        }
    }

    /// Adds one stored span. Spans must come in start-time order; a span
    /// without a start time is ignored.
    pub fn push(&mut self, span: Span) {
        let Some(start) = span.start_time else { return };
        let start_ms = start.div_euclid(1_000_000);
        while self.next_ms < start_ms && self.next_ms <= self.out.to_ms {
            self.evaluate_next();
        }
        self.out.spans += 1;
        let at_ms = span
            .end_time
            .filter(|_| loupe_rollup::is_finished(&span))
            .unwrap_or(start)
            .div_euclid(1_000_000);
        if at_ms <= self.next_ms {
            self.rollups.apply(None, &span);
        } else {
            self.seq += 1;
            self.waiting.push(Reverse(Waiting {
                at_ms,
                seq: self.seq,
                span,
            }));
        }
    }

    /// Evaluates the rest of the range and returns the answer.
    pub fn finish(mut self) -> Preview {
        while self.next_ms <= self.out.to_ms {
            self.evaluate_next();
        }
        self.out.firing_at_end = self
            .eval
            .state
            .alerts
            .values()
            .filter(|e| e.phase == crate::eval::Phase::Firing)
            .count() as u64;
        self.out.threshold = match self.rule.kind {
            RuleType::Threshold | RuleType::Gauge => self.rule.threshold_value(),
            RuleType::Event => Some(f64::from(self.rule.consecutive)),
        };
        let every = self.every_point.len().div_ceil(MAX_POINTS).max(1);
        let worse = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(x), Some(y)) => Some(if self.low_is_bad() {
                x.min(y)
            } else {
                x.max(y)
            }),
            (x, None) => x,
            (None, y) => y,
        };
        // Each point keeps the worst value of the evaluations it stands for.
        self.out.series = self
            .every_point
            .chunks(every)
            .map(|c| {
                let at = c.last().map_or(0, |p| p.0);
                (at, c.iter().fold(None, |acc, p| worse(acc, p.1)))
            })
            .collect();
        self.out
    }

    fn low_is_bad(&self) -> bool {
        matches!(self.rule.op, Op::Lt | Op::Le)
    }

    fn evaluate_next(&mut self) {
        let now = self.next_ms;
        while self.waiting.peek().is_some_and(|Reverse(w)| w.at_ms <= now) {
            if let Some(Reverse(w)) = self.waiting.pop() {
                self.rollups.apply(None, &w.span);
            }
        }
        if self.rule.kind == RuleType::Threshold
            && let Some(metric) = self.rule.metric
        {
            let groups = group_values(&self.rule, &self.selector, &self.rollups, now);
            let low = self.low_is_bad();
            let worst = groups
                .values()
                .filter(|(_, m)| m.count > 0)
                .filter_map(|(_, m)| metric_value(metric, m))
                .fold(None, |acc: Option<f64>, v| {
                    Some(acc.map_or(v, |a| if low { a.min(v) } else { a.max(v) }))
                });
            self.every_point.push((now, worst));
        }
        let notices = self
            .eval
            .evaluate(std::slice::from_ref(&self.rule), &self.rollups, now);
        self.out.evaluations += 1;
        for n in notices {
            match n.state {
                NoticeState::Firing => self.out.fired += 1,
                NoticeState::Resolved => self.out.resolved += 1,
            }
            if self.out.transitions.len() < MAX_LISTED {
                self.out.transitions.push(Transition {
                    at_ms: now,
                    state: n.state.as_str(),
                    group: n.group_text(),
                    value: n.value,
                });
            }
        }
        self.next_ms += self.out.step_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loupe_model::{SpanKind, Status};

    const T0_MS: i64 = 1_780_000_000_000 / MINUTE_MS * MINUTE_MS;

    fn rule(toml_text: &str) -> Rule {
        let mut r: Rule = toml::from_str(toml_text).expect("rule");
        r.project = Some("shop".into());
        r
    }

    fn span(i: u64, minute: i64, status: Status, tool: &str) -> Span {
        let mut s = Span::new("shop", format!("s{i}"));
        s.span_kind = Some(SpanKind::Tool);
        s.tool_name = Some(tool.into());
        s.status = Some(status);
        let start = (T0_MS + minute * MINUTE_MS) * 1_000_000 + 1_000;
        s.start_time = Some(start);
        s.end_time = Some(start + 500_000_000);
        s
    }

    fn preview(r: Rule, spans: Vec<Span>, minutes: i64) -> Preview {
        let mut p = Previewer::new(
            r,
            vec!["category".into()],
            T0_MS,
            T0_MS + minutes * MINUTE_MS,
            Duration::from_secs(60),
        );
        for s in spans {
            p.push(s);
        }
        p.finish()
    }

    #[test]
    fn a_failure_burst_fires_once_and_resolves_once_with_the_window_and_for_applied() {
        let r = rule(
            "name='inv'\nmetric='failure_rate'\nthreshold='50%'\nwindow='5m'\nfor='2m'\nfilters={tool_name='inventory'}\n",
        );
        let mut spans = Vec::new();
        let mut i = 0;
        for minute in 0..60 {
            // Minutes 20..30 fail; an unrelated tool fails all the time.
            let bad = (20..30).contains(&minute);
            i += 1;
            spans.push(span(
                i,
                minute,
                if bad { Status::Error } else { Status::Ok },
                "inventory",
            ));
            i += 1;
            spans.push(span(i, minute, Status::Error, "search"));
        }
        let p = preview(r, spans, 60);
        assert_eq!(p.evaluations, 61);
        assert_eq!(p.spans, 120);
        assert_eq!((p.fired, p.resolved, p.firing_at_end), (1, 1, 0), "{p:?}");
        let fired = &p.transitions[0];
        assert_eq!(fired.state, "firing");
        // Failing from minute 20; the 5-minute window is over 50% from the
        // evaluation at 23 (3 of 4 and more), then `for` adds two minutes.
        assert_eq!((fired.at_ms - T0_MS) / MINUTE_MS, 25, "{p:?}");
        assert_eq!(p.transitions[1].state, "resolved");
        assert_eq!(p.threshold, Some(0.5));
        assert!(p.series.iter().any(|(_, v)| *v == Some(1.0)));
    }

    #[test]
    fn each_group_fires_on_its_own_and_spans_count_from_their_end() {
        let r = rule(
            "name='any-tool'\nmetric='count'\nop='>='\nthreshold=3\nwindow='10m'\ngroup_by=['tool_name']\nfilters={status='error'}\n",
        );
        let mut spans = Vec::new();
        for i in 0..3 {
            spans.push(span(i, 10, Status::Error, "a"));
            spans.push(span(100 + i, 40, Status::Error, "b"));
        }
        // A long failure that starts at minute 0 and ends at minute 45: it
        // counts at its end, with b's.
        let mut long = span(999, 0, Status::Error, "b");
        long.end_time = Some((T0_MS + 45 * MINUTE_MS) * 1_000_000);
        spans.push(long);
        spans.sort_by_key(|s| s.start_time);
        let p = preview(r, spans, 60);
        let groups: Vec<_> = p
            .transitions
            .iter()
            .filter(|t| t.state == "firing")
            .map(|t| (t.group.clone(), (t.at_ms - T0_MS) / MINUTE_MS, t.value))
            .collect();
        assert_eq!(
            groups,
            [
                ("tool_name=a".to_owned(), 11, Some(3.0)),
                ("tool_name=b".to_owned(), 41, Some(3.0)),
            ]
        );
        // b's long span joins at minute 45: 4 in the window, still firing.
        assert_eq!(p.fired, 2);
        assert_eq!(p.resolved, 2, "{p:?}");
    }

    #[test]
    fn an_event_rule_fires_on_consecutive_failures() {
        let r = rule(
            "name='streak'\ntype='event'\nconsecutive=3\nwithin='10m'\nfilters={tool_name='inventory'}\ngroup_by=['tool_name']\n",
        );
        let statuses = [
            Status::Error,
            Status::Error,
            Status::Ok,
            Status::Error,
            Status::Error,
            Status::Error,
        ];
        let spans = statuses
            .iter()
            .enumerate()
            .map(|(i, s)| span(i as u64, i as i64, *s, "inventory"))
            .collect();
        let p = preview(r, spans, 30);
        assert_eq!(p.fired, 1, "{p:?}");
        assert_eq!((p.transitions[0].at_ms - T0_MS) / MINUTE_MS, 6);
    }

    #[test]
    fn the_step_grows_with_the_range_to_bound_the_evaluations() {
        assert_eq!(
            step_for(Duration::from_secs(24 * 3600)),
            Duration::from_secs(60)
        );
        assert_eq!(
            step_for(Duration::from_secs(7 * 24 * 3600)),
            Duration::from_secs(360)
        );
    }
}
