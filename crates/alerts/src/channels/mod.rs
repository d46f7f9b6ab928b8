//! Notification channels, one file per service. HTTP channels build a
//! request ([`HttpRequest`]) from a [`Notice`]; [`Channel::send`] posts it
//! with retries (exponential backoff on network errors, 429 and 5xx, and
//! on the service's own error code) behind a per-channel rate limit.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::eval::Notice;
use loupe_model::duration_text;

pub mod alertmanager;
pub mod dingtalk;
pub mod email;
pub mod feishu;
pub mod slack;
pub mod tls;
pub mod webhook;
pub mod wecom;

/// The kind of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelType {
    /// DingTalk custom robot (optional signing secret).
    Dingtalk,
    /// WeCom (企业微信) group robot.
    Wecom,
    /// Feishu / Lark custom bot (optional signature).
    Feishu,
    /// Slack incoming webhook.
    Slack,
    /// Email over SMTP.
    Email,
    /// Any URL, with a templated JSON body.
    Webhook,
    /// Prometheus Alertmanager (`POST /api/v2/alerts`).
    Alertmanager,
}

/// `[[alerts.channels]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// Name rules refer to.
    pub name: String,
    /// The service.
    #[serde(rename = "type")]
    pub kind: ChannelType,
    /// Webhook URL (Alertmanager: its base URL).
    #[serde(default)]
    pub url: String,
    /// DingTalk / Feishu signing secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Webhook: JSON body template with `{{rule}}`, `{{state}}`,
    /// `{{value}}`, `{{threshold}}`, `{{metric}}`, `{{group}}`,
    /// `{{runs_url}}`, `{{rca_url}}`, `{{summary}}` (JSON-escaped on substitution).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Extra HTTP headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Email: SMTP host.
    #[serde(default)]
    pub smtp_host: String,
    /// Email: SMTP port. Default 25.
    #[serde(default = "default_smtp_port")]
    pub smtp_port: u16,
    /// Email: transport security. Default `auto`.
    #[serde(default)]
    pub smtp_tls: SmtpTls,
    /// Email: sender.
    #[serde(default)]
    pub from: String,
    /// Email: recipients.
    #[serde(default)]
    pub to: Vec<String>,
    /// Email: SMTP user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Email: SMTP password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Retries after a failed delivery. Default 3.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// First retry delay, doubled each time. Default 1 s.
    #[serde(default = "default_backoff", with = "duration_text")]
    pub retry_backoff: Duration,
    /// Time limit of one attempt. Default 10 s.
    #[serde(default = "default_timeout", with = "duration_text")]
    pub timeout: Duration,
    /// Most notices per minute; more are dropped (and logged). Default 30.
    #[serde(default = "default_rate")]
    pub max_per_minute: u32,
    /// PEM file of extra CA certificates to trust for this channel's TLS
    /// (a private CA in front of an internal webhook or SMTP relay). The
    /// system's roots are trusted either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

/// How email reaches the SMTP server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Port 465: TLS from the first byte; any other port: STARTTLS when
    /// the server offers it, plain text when it does not.
    #[default]
    Auto,
    /// STARTTLS, required: refuse to send over plain text.
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
    /// Plain text (a relay on the same host).
    None,
}

fn default_smtp_port() -> u16 {
    25
}
fn default_retries() -> u32 {
    3
}
fn default_backoff() -> Duration {
    Duration::from_secs(1)
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_rate() -> u32 {
    30
}

impl ChannelType {
    /// The name as written in `type = "…"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelType::Dingtalk => "dingtalk",
            ChannelType::Wecom => "wecom",
            ChannelType::Feishu => "feishu",
            ChannelType::Slack => "slack",
            ChannelType::Email => "email",
            ChannelType::Webhook => "webhook",
            ChannelType::Alertmanager => "alertmanager",
        }
    }
}

impl ChannelConfig {
    /// The service's name (`dingtalk`, …).
    pub fn kind_name(&self) -> &'static str {
        self.kind.as_str()
    }

    /// Checks the fields the type needs.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: &str| {
            Err(Error::Invalid(format!(
                "alert channel {:?}: {m}",
                self.name
            )))
        };
        if self.name.is_empty() {
            return Err(Error::Invalid("an alert channel needs a name".into()));
        }
        if self.kind == ChannelType::Email {
            if self.smtp_host.is_empty() || self.from.is_empty() || self.to.is_empty() {
                return bad("email needs smtp_host, from and to");
            }
            return Ok(());
        }
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return bad("url must be an http:// or https:// URL");
        }
        if let Some(b) = &self.body {
            let probe = webhook::render(b, &webhook::probe_notice());
            if serde_json::from_str::<serde_json::Value>(&probe).is_err() {
                return bad("body is not a JSON template");
            }
        }
        Ok(())
    }
}

/// An HTTP request a channel sends.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    /// Full URL (with a signature in the query for DingTalk).
    pub url: String,
    /// JSON body.
    pub body: serde_json::Value,
}

/// A configured channel with its rate limiter and its HTTP client (the
/// client carries the channel's extra CA roots).
#[derive(Debug)]
pub struct Channel {
    /// Its configuration.
    pub config: ChannelConfig,
    sent: Mutex<VecDeque<i64>>,
    http: reqwest::Client,
    extra_roots: Vec<u8>,
}

impl Channel {
    /// A channel from its configuration; reads `ca_file`.
    pub fn new(config: ChannelConfig) -> Result<Self, Error> {
        let extra_roots = match &config.ca_file {
            Some(path) => tls::read_pem_certs(path).map_err(|e| {
                Error::Invalid(format!("alert channel {:?}: ca_file: {e}", config.name))
            })?,
            None => Vec::new(),
        };
        let http = tls::http_client(&extra_roots).map_err(|e| {
            Error::Invalid(format!("alert channel {:?}: HTTP client: {e}", config.name))
        })?;
        Ok(Self {
            config,
            sent: Mutex::new(VecDeque::new()),
            http,
            extra_roots,
        })
    }

    /// Takes a slot of the rate limit at `now_ms`; false when exhausted.
    pub fn admit(&self, now_ms: i64) -> bool {
        let mut sent = self.sent.lock();
        while sent.front().is_some_and(|t| now_ms - t >= 60_000) {
            sent.pop_front();
        }
        if sent.len() >= self.config.max_per_minute as usize {
            return false;
        }
        sent.push_back(now_ms);
        true
    }

    /// The HTTP request for `notice` (not for email).
    pub fn request(&self, notice: &Notice, now_ms: i64) -> Option<HttpRequest> {
        let c = &self.config;
        Some(match c.kind {
            ChannelType::Dingtalk => dingtalk::request(c, notice, now_ms),
            ChannelType::Wecom => wecom::request(c, notice),
            ChannelType::Feishu => feishu::request(c, notice, now_ms),
            ChannelType::Slack => slack::request(c, notice),
            ChannelType::Webhook => webhook::request(c, notice),
            ChannelType::Alertmanager => alertmanager::request(c, notice),
            ChannelType::Email => return None,
        })
    }

    /// Delivers `notice` once, without retries (a test from the console:
    /// the person waiting wants the service's own answer now).
    pub async fn send_once(&self, notice: &Notice, now_ms: i64) -> Result<(), Error> {
        match self.request(notice, now_ms) {
            Some(req) => post(&self.http, &self.config, &req).await,
            None => email::send(&self.config, &self.extra_roots, notice).await,
        }
    }

    /// Delivers `notice` with retries. Returns the attempts made.
    pub async fn send(&self, notice: &Notice, now_ms: i64) -> Result<u32, Error> {
        let mut delay = self.config.retry_backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = match self.request(notice, now_ms) {
                Some(req) => post(&self.http, &self.config, &req).await,
                None => email::send(&self.config, &self.extra_roots, notice).await,
            };
            match result {
                Ok(()) => return Ok(attempt),
                Err(e) if attempt > self.config.retries => return Err(e),
                Err(e) => {
                    tracing::warn!(channel = %self.config.name, attempt, error = %e, "alert delivery failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2);
                }
            }
        }
    }
}

async fn post(http: &reqwest::Client, c: &ChannelConfig, req: &HttpRequest) -> Result<(), Error> {
    let mut builder = http.post(&req.url).timeout(c.timeout).json(&req.body);
    for (k, v) in &c.headers {
        builder = builder.header(k, v);
    }
    let resp = builder
        .send()
        .await
        .map_err(|e| Error::Delivery(format!("{}: {}", c.name, error_chain(&e))))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(Error::Delivery(format!(
            "{}: HTTP {status}: {}",
            c.name,
            truncate(&text)
        )));
    }
    // Chat robots answer 200 with their own error code.
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
        let code = v
            .get("errcode")
            .or_else(|| v.get("code"))
            .or_else(|| v.get("StatusCode"));
        if let Some(code) = code.and_then(serde_json::Value::as_i64)
            && code != 0
        {
            return Err(Error::Delivery(format!(
                "{}: service error {code}: {}",
                c.name,
                truncate(&text)
            )));
        }
    }
    Ok(())
}

/// `e` and its causes, so a TLS failure says "invalid peer certificate:
/// UnknownIssuer" and not only "error sending request".
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

fn truncate(s: &str) -> String {
    s.chars().take(300).collect()
}

/// Markdown text shared by the chat channels.
pub fn markdown(n: &Notice) -> String {
    let mut text = format!(
        "### {}\n\n- rule: {}\n- state: {}\n- group: {}\n- {}\n",
        n.headline(),
        n.rule,
        n.state.as_str(),
        n.group_text(),
        n.condition_text()
    );
    if !n.summary.is_empty() {
        text.push_str(&format!("- summary: {}\n", n.summary));
    }
    text.push_str(&format!(
        "- example runs: [{}]({})\n",
        n.runs_url, n.runs_url
    ));
    if !n.rca_url.is_empty() {
        text.push_str(&format!(
            "- what changed (根因分析): [{}]({})\n",
            n.rca_url, n.rca_url
        ));
    }
    text
}

/// Plain text shared by text-only channels.
pub fn plain(n: &Notice) -> String {
    let mut text = format!(
        "{}\nrule: {}\nstate: {}\ngroup: {}\n{}\n",
        n.headline(),
        n.rule,
        n.state.as_str(),
        n.group_text(),
        n.condition_text()
    );
    if !n.summary.is_empty() {
        text.push_str(&format!("summary: {}\n", n.summary));
    }
    text.push_str(&format!("example runs: {}\n", n.runs_url));
    if !n.rca_url.is_empty() {
        text.push_str(&format!("what changed (根因分析): {}\n", n.rca_url));
    }
    text
}
