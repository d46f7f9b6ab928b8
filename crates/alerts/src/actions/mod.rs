//! Actions run when an alert fires: a command (`tokio::process`, with a
//! timeout, the alert's fields in `LOUPE_ALERT_*` variables) or a webhook
//! call (the notice as JSON). A cooldown per (action, rule, group) stops
//! repeats; every execution and skip is appended to the audit log
//! (`alerts-audit.jsonl`).

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::Error;
use crate::eval::Notice;
use loupe_model::duration_text;

/// The kind of an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionType {
    /// Run a program.
    Command,
    /// `POST` the notice as JSON to a URL.
    Webhook,
}

/// `[[alerts.actions]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionConfig {
    /// Name rules refer to.
    pub name: String,
    /// `command` or `webhook`.
    #[serde(rename = "type")]
    pub kind: ActionType,
    /// Command: program and arguments (no shell).
    #[serde(default)]
    pub command: Vec<String>,
    /// Webhook: URL.
    #[serde(default)]
    pub url: String,
    /// Time limit; the command is killed after it. Default 30 s.
    #[serde(default = "default_timeout", with = "duration_text")]
    pub timeout: Duration,
    /// No second run for the same rule and group within this. Default 5 min.
    #[serde(default = "default_cooldown", with = "duration_text")]
    pub cooldown: Duration,
    /// Projects whose rules posted to the API may name this action. Empty
    /// (default): only rules in the config file can run it, so an API key
    /// cannot make Loupe run the operator's command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub projects: Vec<String>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_cooldown() -> Duration {
    Duration::from_secs(300)
}

impl ActionConfig {
    /// Checks the fields the type needs.
    pub fn validate(&self) -> Result<(), Error> {
        let ok = match self.kind {
            ActionType::Command => !self.command.is_empty(),
            ActionType::Webhook => {
                self.url.starts_with("http://") || self.url.starts_with("https://")
            }
        };
        if self.name.is_empty() || !ok {
            return Err(Error::Invalid(format!(
                "alert action {:?}: needs a name and `command` (a list) or an http(s) `url`",
                self.name
            )));
        }
        Ok(())
    }
}

/// The actions, their cooldowns and the audit log.
#[derive(Debug)]
pub struct Actions {
    configs: Vec<ActionConfig>,
    last_run: Mutex<HashMap<String, i64>>,
    audit: Option<PathBuf>,
}

/// The outcome of one action for one notice.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// `ok`, `failed`, `timeout`, `cooldown` (skipped) or `error`.
    pub outcome: String,
    /// Exit code of a command.
    pub exit_code: Option<i32>,
    /// Detail (stderr tail, HTTP status, error).
    pub detail: String,
}

impl Actions {
    /// Actions writing their audit log to `audit` (none: no log).
    pub fn new(configs: Vec<ActionConfig>, audit: Option<PathBuf>) -> Self {
        Self {
            configs,
            last_run: Mutex::new(HashMap::new()),
            audit,
        }
    }

    /// Runs the named action for a firing notice (honouring the cooldown)
    /// and records the outcome.
    pub async fn run(
        &self,
        name: &str,
        n: &Notice,
        http: &reqwest::Client,
        now_ms: i64,
    ) -> Outcome {
        let started = Instant::now();
        let Some(cfg) = self.configs.iter().find(|c| c.name == name) else {
            return self.record(
                name,
                n,
                now_ms,
                started,
                outcome("error", None, format!("no action named {name:?}")),
            );
        };
        let key = format!(
            "{name}\u{1f}{}\u{1f}{}\u{1f}{}",
            n.project.as_deref().unwrap_or(""),
            n.rule,
            n.group_text()
        );
        {
            let mut last = self.last_run.lock();
            if let Some(t) = last.get(&key)
                && now_ms - t < cfg.cooldown.as_millis() as i64
            {
                let o = outcome("cooldown", None, format!("last run {} ms ago", now_ms - t));
                drop(last);
                return self.record(name, n, now_ms, started, o);
            }
            last.insert(key, now_ms);
        }
        let o = match cfg.kind {
            ActionType::Command => run_command(cfg, n).await,
            ActionType::Webhook => call_webhook(cfg, n, http).await,
        };
        self.record(name, n, now_ms, started, o)
    }

    fn record(&self, name: &str, n: &Notice, now_ms: i64, started: Instant, o: Outcome) -> Outcome {
        tracing::info!(action = name, rule = %n.rule, outcome = %o.outcome, "alert action");
        let Some(path) = &self.audit else { return o };
        let line = json!({
            "ts": chrono::DateTime::from_timestamp_millis(now_ms).map(|t| t.to_rfc3339()),
            "action": name,
            "project": n.project,
            "rule": n.rule,
            "group": n.group,
            "state": n.state.as_str(),
            "value": n.value,
            "outcome": o.outcome,
            "exit_code": o.exit_code,
            "duration_ms": started.elapsed().as_millis() as u64,
            "detail": o.detail,
        });
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = written {
            tracing::error!(path = %path.display(), error = %e, "cannot write the alert audit log");
        }
        o
    }
}

fn outcome(what: &str, exit_code: Option<i32>, detail: String) -> Outcome {
    Outcome {
        outcome: what.to_owned(),
        exit_code,
        detail,
    }
}

/// The `LOUPE_ALERT_*` variables of a notice.
pub fn env_vars(n: &Notice) -> Vec<(String, String)> {
    let mut v = vec![
        ("LOUPE_ALERT_RULE".to_owned(), n.rule.clone()),
        ("LOUPE_ALERT_STATE".to_owned(), n.state.as_str().to_owned()),
        (
            "LOUPE_ALERT_VALUE".to_owned(),
            n.value.map(|v| v.to_string()).unwrap_or_default(),
        ),
        ("LOUPE_ALERT_THRESHOLD".to_owned(), n.threshold.to_string()),
        ("LOUPE_ALERT_METRIC".to_owned(), n.metric.clone()),
        ("LOUPE_ALERT_GROUP".to_owned(), n.group_text()),
        ("LOUPE_ALERT_RUNS_URL".to_owned(), n.runs_url.clone()),
        ("LOUPE_ALERT_RCA_URL".to_owned(), n.rca_url.clone()),
        ("LOUPE_ALERT_SUMMARY".to_owned(), n.summary.clone()),
    ];
    for (k, val) in &n.labels {
        let name: String = k
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        v.push((format!("LOUPE_ALERT_LABEL_{name}"), val.clone()));
    }
    v
}

async fn run_command(cfg: &ActionConfig, n: &Notice) -> Outcome {
    let Some((program, args)) = cfg.command.split_first() else {
        return outcome("error", None, "empty command".into());
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .envs(env_vars(n))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return outcome("error", None, format!("cannot start {program:?}: {e}")),
    };
    match tokio::time::timeout(cfg.timeout, child.wait_with_output()).await {
        Err(_) => outcome("timeout", None, format!("killed after {:?}", cfg.timeout)),
        Ok(Err(e)) => outcome("error", None, e.to_string()),
        Ok(Ok(out)) => {
            let err = String::from_utf8_lossy(&out.stderr);
            let tail: String = err
                .chars()
                .rev()
                .take(500)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let what = if out.status.success() { "ok" } else { "failed" };
            outcome(what, out.status.code(), tail)
        }
    }
}

async fn call_webhook(cfg: &ActionConfig, n: &Notice, http: &reqwest::Client) -> Outcome {
    match http
        .post(&cfg.url)
        .timeout(cfg.timeout)
        .json(n)
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => outcome("ok", None, format!("HTTP {}", r.status())),
        Ok(r) => outcome("failed", None, format!("HTTP {}", r.status())),
        Err(e) if e.is_timeout() => outcome("timeout", None, e.to_string()),
        Err(e) => outcome("error", None, e.to_string()),
    }
}
