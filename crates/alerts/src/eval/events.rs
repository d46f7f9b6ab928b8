//! Event rules: N consecutive failures of the same group (tool, error
//! class) within T, from the rollups' recent-events feed. A success in the
//! group breaks the streak and resolves a firing alert; so does `within`
//! passing without a new failure.

use loupe_rollup::events::RecentEvents;

use super::state::alert_key;
use super::{Evaluator, Notice, NoticeState, Phase};
use crate::rules::Rule;
use crate::rules::filter::{Selector, group_key};

impl Evaluator {
    pub(super) fn event_rule(
        &mut self,
        rule: &Rule,
        feed: &RecentEvents,
        now_ms: i64,
        out: &mut Vec<Notice>,
    ) {
        let sel = Selector::new(rule, self.labels());
        let n = rule.consecutive as usize;
        let within = rule.within.as_millis() as i64;
        let mut events: Vec<_> = feed
            .since(self.state.event_cursor)
            .filter(|e| sel.matches(&e.key))
            .collect();
        events.sort_by_key(|e| (e.at_ns.unwrap_or(i64::MAX), e.seq));
        for ev in events {
            let group = sel.group(&ev.key);
            let key = alert_key(&rule.id(), &group_key(&group));
            let at_ms = ev.at_ns.map_or(now_ms, |ns| ns.div_euclid(1_000_000));
            if !ev.error {
                self.state.streaks.remove(&key);
                self.resolve_event(rule, &sel, &key, now_ms, out);
                continue;
            }
            let streak = self.state.streaks.entry(key.clone()).or_default();
            streak.push_back(at_ms);
            while streak.len() > n {
                streak.pop_front();
            }
            let span =
                streak.back().copied().unwrap_or(at_ms) - streak.front().copied().unwrap_or(at_ms);
            if streak.len() < n || span > within {
                continue;
            }
            self.state.streaks.remove(&key);
            let value = Some(n as f64);
            let firing = self
                .state
                .alerts
                .get(&key)
                .is_some_and(|e| e.phase == Phase::Firing);
            if !firing {
                self.step(rule, &sel, &group, Some(true), value, now_ms, out);
            }
            if let Some(e) = self.state.alerts.get_mut(&key) {
                e.last_event_ms = Some(at_ms);
            }
        }
        // Quiet for `within` since the last failure: resolve.
        let stale: Vec<String> = self
            .state
            .alerts
            .iter()
            .filter(|(_, e)| e.is_of(rule) && e.phase == Phase::Firing)
            .filter(|(_, e)| now_ms - e.last_event_ms.unwrap_or(e.active_since_ms) > within)
            .map(|(k, _)| k.clone())
            .collect();
        for key in stale {
            self.resolve_event(rule, &sel, &key, now_ms, out);
        }
        // Drop resolved event alerts from the previous evaluation.
        let done: Vec<String> = self
            .state
            .alerts
            .iter()
            .filter(|(_, e)| e.is_of(rule) && e.phase == Phase::Resolved)
            .filter(|(_, e)| e.resolved_at_ms.is_some_and(|t| t < now_ms))
            .map(|(k, _)| k.clone())
            .collect();
        for key in done {
            self.state.alerts.remove(&key);
        }
    }

    fn resolve_event(
        &mut self,
        rule: &Rule,
        sel: &Selector,
        key: &str,
        now_ms: i64,
        out: &mut Vec<Notice>,
    ) {
        let Some(e) = self.state.alerts.get_mut(key) else {
            return;
        };
        if e.phase != Phase::Firing {
            return;
        }
        e.phase = Phase::Resolved;
        e.resolved_at_ms = Some(now_ms);
        let e = e.clone();
        if rule.recovery {
            out.push(self.notice(rule, sel, &e, NoticeState::Resolved, now_ms));
        }
    }
}
