//! The persisted alert state (`alerts.json`): the phase of every active
//! alert, event-rule streaks, silences and the rules added through the API.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::rules::{Rule, Silence};
use crate::{Error, util};

/// Format version of [`AlertState`].
pub const STATE_FORMAT: u32 = 1;

/// Where an alert is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The condition holds, `for` has not elapsed.
    Pending,
    /// Firing.
    Firing,
    /// Resolved at the last evaluation (dropped at the next).
    Resolved,
}

/// One alert: a rule and a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEntry {
    /// The rule.
    pub rule: String,
    /// The rule's project (none: a config rule over every project).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Group labels (empty without group-by).
    pub group: BTreeMap<String, String>,
    /// Phase.
    pub phase: Phase,
    /// When the condition started holding, ms.
    pub active_since_ms: i64,
    /// When it fired, ms.
    #[serde(default)]
    pub fired_at_ms: Option<i64>,
    /// When it resolved, ms.
    #[serde(default)]
    pub resolved_at_ms: Option<i64>,
    /// The last value seen.
    #[serde(default)]
    pub value: Option<f64>,
    /// Event rules: time of the last failure, ms.
    #[serde(default)]
    pub last_event_ms: Option<i64>,
    /// When its last firing notice went out (first or repeated), ms.
    #[serde(default)]
    pub notified_at_ms: Option<i64>,
}

/// Everything `alerts.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AlertState {
    /// [`STATE_FORMAT`].
    pub format_version: u32,
    /// Active alerts by `rule` + `\u{1f}` + group key.
    pub alerts: BTreeMap<String, AlertEntry>,
    /// Event rules: recent failure times (ms) per rule + group, oldest first.
    pub streaks: BTreeMap<String, VecDeque<i64>>,
    /// The last event of the recent-events feed consumed.
    pub event_cursor: u64,
    /// Silences (expired ones are pruned at evaluation).
    pub silences: Vec<Silence>,
    /// Rules added through the API.
    pub api_rules: Vec<Rule>,
    /// The last [`HISTORY_KEPT`] notices, oldest first, with what each
    /// channel and action did (absent in files from before it: empty).
    pub history: VecDeque<HistoryEntry>,
}

/// Notices kept in [`AlertState::history`].
pub const HISTORY_KEPT: usize = 1_000;

/// One notice as it went out: firing (first or a reminder) or resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When, ms.
    pub at_ms: i64,
    /// The rule.
    pub rule: String,
    /// The rule's project (none: a config rule over every project).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Group labels.
    pub group: BTreeMap<String, String>,
    /// `firing` or `resolved`.
    pub state: String,
    /// A firing notice repeated at `repeat_interval` (not a new firing).
    #[serde(default)]
    pub reminder: bool,
    /// The value.
    pub value: Option<f64>,
    /// A silence muted it.
    #[serde(default)]
    pub silenced: bool,
    /// Each channel's and action's result (`sent`, `silenced`,
    /// `rate_limited`, `failed: …`, an action's outcome).
    pub deliveries: Vec<HistoryDelivery>,
}

/// What one channel or action did with a notice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryDelivery {
    /// Channel or action name.
    pub target: String,
    /// `channel` or `action`.
    pub kind: String,
    /// Its result.
    pub result: String,
}

impl HistoryEntry {
    /// Whether a key of `project` may see it (as [`AlertEntry::visible_to`]).
    pub fn visible_to(&self, project: &str) -> bool {
        match &self.project {
            Some(p) => p == project,
            None => self.group.get("project").is_some_and(|p| p == project),
        }
    }
}

impl Default for AlertState {
    fn default() -> Self {
        Self {
            format_version: STATE_FORMAT,
            alerts: BTreeMap::new(),
            streaks: BTreeMap::new(),
            event_cursor: 0,
            silences: Vec::new(),
            api_rules: Vec::new(),
            history: VecDeque::new(),
        }
    }
}

impl AlertState {
    /// Reads `path`; a missing file is an empty state.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(Error::Io {
                    path: path.to_owned(),
                    source: e,
                });
            }
        };
        let state: AlertState = serde_json::from_slice(&text).map_err(|e| {
            Error::Invalid(format!("{}: not valid alert state: {e}", path.display()))
        })?;
        if state.format_version != STATE_FORMAT {
            return Err(Error::Invalid(format!(
                "{}: alert state format {} is not supported (expects {STATE_FORMAT})",
                path.display(),
                state.format_version
            )));
        }
        Ok(state)
    }

    /// Writes the state to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let body = serde_json::to_vec_pretty(self).map_err(|e| Error::Invalid(e.to_string()))?;
        util::write_atomic(path, &body)
    }
}

impl AlertEntry {
    /// Whether the alert is `rule`'s.
    pub fn is_of(&self, rule: &Rule) -> bool {
        self.rule == rule.name && self.project == rule.project
    }

    /// Whether a key of `project` may see the alert: its rule's project, or
    /// (a rule over every project) its `project` group label.
    pub fn visible_to(&self, project: &str) -> bool {
        match &self.project {
            Some(p) => p == project,
            None => self.group.get("project").is_some_and(|p| p == project),
        }
    }
}

/// The map key of an alert.
pub fn alert_key(rule: &str, group_key: &str) -> String {
    format!("{rule}\u{1f}{group_key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_file_from_before_the_history_loads_with_an_empty_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("alerts.json");
        // As written by the build before `history` existed.
        std::fs::write(
            &path,
            r#"{"format_version":1,"alerts":{},"streaks":{},"event_cursor":7,"silences":[],"api_rules":[]}"#,
        )
        .expect("write");
        let state = AlertState::load(&path).expect("load");
        assert_eq!(state.event_cursor, 7);
        assert!(state.history.is_empty());
    }
}
