//! The scenario: e-commerce customer service apps, users, categories and the
//! node sequence of each run, as a source-neutral [`Plan`] that the Phoenix
//! (OTLP) and Langfuse encoders render.

use serde_json::{Value, json};

use crate::rng::{Rng, mix};
use crate::text::{about_bytes, words};
use crate::{Fault, GenConfig};

/// Product categories (the `category` run input).
pub const CATEGORIES: &[&str] = &["phone", "laptop", "clothing", "food", "books"];
/// User tiers (the `profile.tier` run input).
pub const TIERS: &[&str] = &["free", "silver", "gold"];
/// Tools the apps call (the `tool_name` of tool spans).
pub const TOOLS: &[&str] = &["inventory", "coupon", "payment", "logistics"];

const MS: i64 = 1_000_000;
const TENANT_SEED: u64 = 0x10_0FE;

/// A Dify app of the scenario.
pub(crate) struct App {
    pub name: &'static str,
    /// `advanced-chat` (chatflow: runs share conversations) or `workflow`.
    pub chat: bool,
    /// Published workflow versions, oldest first, with the LLM model each uses.
    pub versions: &'static [(&'static str, &'static str, &'static str)],
}

pub(crate) const APPS: &[App] = &[
    App {
        name: "ShopAssist",
        chat: true,
        versions: &[
            ("2026-01-05 09:12:44.118302", "gpt-4o-mini", "openai"),
            (
                "2026-02-17 16:40:03.552910",
                "claude-3-5-haiku",
                "anthropic",
            ),
        ],
    },
    App {
        name: "OrderDesk",
        chat: false,
        versions: &[
            ("2026-01-20 11:03:27.906551", "gpt-4o", "openai"),
            ("2026-03-02 08:55:10.431077", "gpt-4o-mini", "openai"),
        ],
    },
    App {
        name: "ReturnsHelper",
        chat: false,
        versions: &[("2026-02-01 14:21:38.004812", "qwen-plus", "tongyi")],
    },
];

/// Stable ids of app `i` in workspace `w`: each workspace has its own
/// copies of the apps (in Dify an app belongs to one workspace).
/// Workspace 0 keeps the ids of a one-workspace workload.
fn workspace_app_ids(w: usize, i: usize) -> (String, String) {
    let mut rng = Rng::new(0xA99, ((w as u64) << 16) | i as u64);
    (rng.uuid(), rng.uuid())
}

/// The tenant (workspace) id of workspace `w`.
pub(crate) fn workspace_tenant_id(w: usize) -> String {
    Rng::new(TENANT_SEED, w as u64).uuid()
}

/// Which of `workspaces` workspaces run `index` belongs to: workspace `w`
/// gets a share proportional to 1/(w+1) (three workspaces: 55 %, 27 %,
/// 18 %), so a tenant filter selects a large, a middle and a small one.
/// Drawn from its own stream: the runs' other draws do not change.
fn workspace_of(config: &GenConfig, index: usize, workspaces: usize) -> usize {
    if workspaces <= 1 {
        return 0;
    }
    let weights: Vec<u32> = (0..workspaces)
        .map(|w| (600 / (w + 1)).max(1) as u32)
        .collect();
    Rng::new(mix(config.seed, 0x3B5), index as u64).weighted(&weights)
}

/// USD per million (prompt, completion) tokens.
fn price(model: &str) -> (f64, f64) {
    match model {
        "gpt-4o" => (2.5, 10.0),
        "claude-3-5-haiku" => (0.8, 4.0),
        "qwen-plus" => (0.4, 1.2),
        _ => (0.15, 0.6),
    }
}

/// Model usage of an LLM node.
#[derive(Debug, Clone)]
pub(crate) struct Usage {
    pub model: &'static str,
    pub provider: &'static str,
    pub prompt: i64,
    pub completion: i64,
    pub price: f64,
}

/// A node's failure: (exception class, message).
pub(crate) type Failure = (String, String);

/// One node execution.
#[derive(Debug, Clone)]
pub(crate) struct NodePlan {
    pub span_hex: String,
    pub exec_id: String,
    pub node_id: String,
    pub node_type: &'static str,
    pub title: &'static str,
    pub tool: Option<&'static str>,
    pub error: Option<Failure>,
    pub start: i64,
    pub end: i64,
    pub input: String,
    pub output: String,
    pub usage: Option<Usage>,
}

/// One workflow run.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub run_id: String,
    /// The workspace's tenant id.
    pub tenant: String,
    pub trace_hex: String,
    pub root_hex: String,
    pub workflow_hex: String,
    pub app: usize,
    pub app_id: String,
    pub workflow_id: String,
    pub version: &'static str,
    pub user: String,
    pub conversation: Option<String>,
    pub inputs: Value,
    pub query: String,
    pub start: i64,
    pub end: i64,
    pub output: String,
    pub error: Option<String>,
    pub nodes: Vec<NodePlan>,
}

impl Plan {
    /// The session id Dify reports: the conversation, else the run.
    pub(crate) fn session(&self) -> &str {
        self.conversation.as_deref().unwrap_or(&self.run_id)
    }

    /// Sum of the LLM nodes' tokens.
    pub(crate) fn total_tokens(&self) -> i64 {
        self.nodes
            .iter()
            .filter_map(|n| n.usage.as_ref())
            .map(|u| u.prompt + u.completion)
            .sum()
    }
}

/// Builds run `index` of `config`, in one of `workspaces` workspaces.
pub(crate) fn plan(config: &GenConfig, index: usize, workspaces: usize) -> Plan {
    let workspace = workspace_of(config, index, workspaces);
    let mut rng = Rng::new(config.seed, index as u64);
    let runs = config.runs.max(1) as i64;
    let slot = (config.spread_ns.max(0) / runs).max(1);
    let start = config
        .start_ns
        .saturating_add(slot.saturating_mul(index as i64))
        .saturating_add(rng.below(slot as u64) as i64);

    let pool = (config.runs / 8).clamp(20, 5000) as u64;
    let user_idx = rng.below(pool);
    let user = format!("cust-{user_idx:05}");
    let mut user_rng = Rng::new(mix(config.seed, 0x05E2), user_idx);
    let tier = TIERS[user_rng.weighted(&[60, 28, 12])];
    let category = CATEGORIES[rng.weighted(&[30, 22, 20, 16, 12])];
    let app = rng.weighted(&[55, 30, 15]);
    let spec = &APPS[app];
    let (app_id, workflow_id) = workspace_app_ids(workspace, app);
    let vi = if spec.versions.len() > 1 && rng.chance(0.7) {
        spec.versions.len() - 1
    } else {
        0
    };
    let (version, model, provider) = spec.versions[vi];
    let conversation = spec.chat.then(|| {
        let slot = user_rng.below(1_000).wrapping_add(rng.below(3));
        Rng::new(mix(config.seed, 0xC0), user_idx * 1_000 + slot).uuid()
    });
    let run_id = rng.uuid();
    let query_words = rng.range(8, 40) as usize;
    let query = words(&mut rng, query_words);
    let order_id = format!("SO-{}", rng.range(100_000, 999_999));
    let mut inputs = json!({
        "query": query,
        "category": category,
        "order_id": order_id,
        "profile": {"tier": tier, "member_since": 2015 + rng.below(11)},
        "sys.files": [],
        "sys.user_id": user,
        "sys.app_id": app_id,
        "sys.workflow_id": workflow_id,
        "sys.workflow_run_id": run_id,
        "sys.timestamp": start / 1_000_000_000,
    });
    if let (Some(c), Some(obj)) = (&conversation, inputs.as_object_mut()) {
        obj.insert("sys.conversation_id".into(), json!(c));
        obj.insert("sys.dialogue_count".into(), json!(1 + rng.below(6)));
    }

    let mut b = Builder {
        rng: &mut rng,
        faults: &config.faults,
        category,
        app,
        now: start + 2 * MS,
        nodes: Vec::new(),
        failed: None,
        model,
        provider,
    };
    b.step("start", "Start", None, 2 * MS, inputs.to_string(), 0.0);
    match app {
        0 => shop_assist(&mut b, &query),
        1 => order_desk(&mut b, &query, &order_id),
        _ => returns_helper(&mut b, &query, &order_id),
    }
    if b.failed.is_none() {
        let answer = b.nodes.iter().rev().find(|n| n.node_type == "llm");
        let out = json!({"answer": answer.map(|n| n.output.clone()).unwrap_or_default()});
        b.step("end", "End", None, MS, out.to_string(), 0.0);
    }
    let end = b.now + 4 * MS;
    let error = b.failed.take();
    let output = match (&error, b.nodes.last()) {
        (None, Some(last)) => last.output.clone(),
        _ => "{}".to_owned(),
    };
    let nodes = std::mem::take(&mut b.nodes);
    let trace_hex = rng.hex_id(16);
    let root_hex = rng.hex_id(8);
    let workflow_hex = rng.hex_id(8);
    Plan {
        run_id,
        tenant: workspace_tenant_id(workspace),
        trace_hex,
        root_hex,
        workflow_hex,
        app,
        app_id,
        workflow_id,
        version,
        user,
        conversation,
        inputs,
        query,
        start,
        end,
        output,
        error,
        nodes,
    }
}

struct Builder<'a> {
    rng: &'a mut Rng,
    faults: &'a [Fault],
    category: &'static str,
    app: usize,
    now: i64,
    nodes: Vec<NodePlan>,
    failed: Option<String>,
    model: &'static str,
    provider: &'static str,
}

impl Builder<'_> {
    fn alive(&self) -> bool {
        self.failed.is_none()
    }

    /// Adds a node of `median` latency. `fail` is the base failure chance.
    fn step(
        &mut self,
        node_type: &'static str,
        title: &'static str,
        tool: Option<&'static str>,
        median: i64,
        input: String,
        fail: f64,
    ) -> Option<usize> {
        if !self.alive() {
            return None;
        }
        let start = self.now;
        let mut dur = self.rng.latency(median);
        let mut error = None;
        let fault = tool.and_then(|t| {
            self.faults.iter().find(|f| {
                f.tool == t
                    && f.category.as_deref().is_none_or(|c| c == self.category)
                    && (f.from_ns..f.to_ns).contains(&start)
            })
        });
        if let Some(f) = fault {
            dur = dur.saturating_add(f.extra_latency_ns.max(0));
            if self.rng.chance(f.error_rate) {
                error = Some(("ToolInvokeError".to_owned(), f.error.clone()));
            }
        } else if self.rng.chance(fail) {
            error = Some(base_error(self.rng, node_type, tool));
        }
        let seq = (self.app * 100 + self.nodes.len()) as u64;
        let node_id = Rng::new(0x0DE, seq).uuid();
        let exec_id = self.rng.uuid();
        let span_hex = self.rng.hex_id(8);
        self.nodes.push(NodePlan {
            span_hex,
            exec_id,
            node_id,
            node_type,
            title,
            tool,
            error: None,
            start,
            end: start + dur,
            input,
            output: String::new(),
            usage: None,
        });
        self.now = start + dur + self.rng.range(MS / 2, 3 * MS);
        let i = self.nodes.len() - 1;
        if let Some((class, message)) = error {
            self.failed = Some(message.clone());
            self.nodes[i].error = Some((class, message));
            self.nodes[i].output = "{}".to_owned();
        }
        Some(i)
    }

    fn set_output(&mut self, i: Option<usize>, output: String) {
        if let Some(node) = i.and_then(|i| self.nodes.get_mut(i))
            && node.error.is_none()
        {
            node.output = output;
        }
    }

    fn retrieval(&mut self, title: &'static str, query: &str) {
        let input = json!({"query": query, "dataset_ids": ["faq", self.category]});
        let i = self.step(
            "knowledge-retrieval",
            title,
            None,
            220 * MS,
            input.to_string(),
            0.03,
        );
        let chunks: Vec<Value> = (0..self.rng.range(2, 5))
            .map(|k| {
                let size = self.rng.range(200, 700) as usize;
                json!({"content": about_bytes(self.rng, size), "score": 0.9 - k as f64 * 0.07,
                       "title": format!("{}-faq-{}.md", self.category, self.rng.range(1, 60))})
            })
            .collect();
        self.set_output(i, json!({"result": chunks}).to_string());
    }

    fn llm(&mut self, title: &'static str, context: &str, answer_words: (i64, i64)) {
        let system = "You are a helpful customer service agent for an online store.";
        let prompt = format!("{system}\n\nContext:\n{context}");
        let input = json!([{"role": "system", "text": prompt}]).to_string();
        let n = self.rng.range(answer_words.0, answer_words.1) as usize;
        let text = words(self.rng, n);
        // Generation time grows with the answer length.
        let median = 350 * MS + n as i64 * 18 * MS;
        let prompt_tokens = input.len() as i64 / 4 + 40;
        let i = self.step("llm", title, None, median, input, 0.01);
        let Some(i) = i else { return };
        let completion = if self.nodes[i].error.is_none() {
            text.len() as i64 / 4 + 1
        } else {
            0
        };
        let (pp, pc) = price(self.model);
        let cost = (prompt_tokens as f64 * pp + completion as f64 * pc) / 1e6;
        self.nodes[i].usage = Some(Usage {
            model: self.model,
            provider: self.provider,
            prompt: prompt_tokens,
            completion,
            price: (cost * 1e7).round() / 1e7,
        });
        self.set_output(Some(i), json!({"text": text}).to_string());
    }

    fn tool(&mut self, tool: &'static str, title: &'static str, args: Value, median: i64) {
        let fail = if tool == "payment" { 0.03 } else { 0.02 };
        let i = self.step("tool", title, Some(tool), median, args.to_string(), fail);
        let out = match tool {
            "inventory" => {
                json!({"sku": format!("{}-{}", self.category, self.rng.range(1000, 9999)),
                                  "in_stock": self.rng.chance(0.8), "warehouse": *self.rng.pick(&["SH-1", "BJ-2", "SZ-3"])})
            }
            "coupon" => {
                json!({"code": format!("SAVE{}", self.rng.range(5, 30)), "valid": self.rng.chance(0.85)})
            }
            "payment" => json!({"transaction_id": self.rng.uuid(), "state": "captured"}),
            _ => json!({"carrier": *self.rng.pick(&["SF Express", "JD Logistics", "YTO"]),
                        "eta_days": self.rng.range(1, 7), "events": about_bytes(self.rng, 160)}),
        };
        self.set_output(i, out.to_string());
    }

    fn branch(&mut self, title: &'static str, actual: &str, case: &str) {
        let input = json!({"conditions": [{"actual_value": actual, "expected_value": case, "comparison_operator": "contains"}]});
        let i = self.step("if-else", title, None, MS / 2, input.to_string(), 0.0);
        self.set_output(
            i,
            json!({"result": true, "selected_case_id": case}).to_string(),
        );
    }

    fn http(&mut self, title: &'static str, url: &str) {
        let body = about_bytes(self.rng, 240);
        let input = json!({"method": "post", "url": url, "body": body});
        let i = self.step(
            "http-request",
            title,
            None,
            180 * MS,
            input.to_string(),
            0.02,
        );
        let out = json!({"status_code": 200, "body": "{\"ok\": true}", "headers": {"content-type": "application/json"}});
        self.set_output(i, out.to_string());
    }

    fn context(&self) -> String {
        self.nodes
            .iter()
            .rev()
            .take(3)
            .map(|n| n.output.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn base_error(rng: &mut Rng, node_type: &str, tool: Option<&str>) -> Failure {
    let (class, msg) = match (node_type, tool) {
        ("knowledge-retrieval", _) => (
            "KnowledgeRetrievalNodeError",
            "Request to vector database failed: HTTP 500 Internal Server Error from http://weaviate:8080/v1/graphql",
        ),
        ("llm", _) => (
            "InvokeRateLimitError",
            "[openai] Rate Limit Error, Error code: 429 - Rate limit reached for requests",
        ),
        ("http-request", _) => (
            "HttpRequestNodeError",
            *rng.pick(&[
                "[Errno 111] Connection refused",
                "Request failed with status code 503: Service Unavailable",
            ]),
        ),
        (_, Some("inventory")) => ("ToolInvokeError", "inventory service timed out after 5s"),
        (_, Some("coupon")) => (
            "ToolInvokeError",
            "coupon service: code not found or expired",
        ),
        (_, Some("payment")) => (
            "ToolInvokeError",
            "payment gateway declined: HTTP 402 card_declined",
        ),
        (_, Some("logistics")) => (
            "ToolInvokeError",
            "logistics API returned HTTP 502 Bad Gateway",
        ),
        _ => ("NodeRunError", "node failed"),
    };
    (class.to_owned(), msg.to_owned())
}

fn shop_assist(b: &mut Builder<'_>, query: &str) {
    b.retrieval("Product FAQ", query);
    let ctx = b.context();
    b.llm("Classify intent", &ctx, (3, 12));
    let intent = *b.rng.pick(&["stock", "promotion", "delivery"]);
    b.branch("Route by intent", query, intent);
    let args = json!({"category": b.category, "query": query});
    match intent {
        "stock" => b.tool("inventory", "Check inventory", args, 140 * MS),
        "promotion" => b.tool("coupon", "Find coupon", args, 90 * MS),
        _ => b.tool("logistics", "Track parcel", args, 260 * MS),
    }
    let ctx = b.context();
    b.llm("Answer", &ctx, (60, 300));
}

fn order_desk(b: &mut Builder<'_>, query: &str, order: &str) {
    let args = json!({"order_id": order, "category": b.category});
    b.tool("inventory", "Reserve stock", args.clone(), 160 * MS);
    if b.rng.chance(0.6) {
        b.tool("coupon", "Apply coupon", args.clone(), 80 * MS);
    }
    b.branch("In stock?", query, "true");
    b.tool("payment", "Charge card", args, 420 * MS);
    b.http("Notify ERP", "https://erp.internal/api/orders");
    let ctx = b.context();
    b.llm("Confirmation message", &ctx, (40, 160));
}

fn returns_helper(b: &mut Builder<'_>, query: &str, order: &str) {
    b.retrieval("Return policy", query);
    let ctx = b.context();
    b.llm("Eligibility", &ctx, (30, 120));
    b.branch("Eligible?", query, "true");
    let args = json!({"order_id": order, "action": "pickup"});
    b.tool("logistics", "Schedule pickup", args, 300 * MS);
    b.http("Create RMA", "https://rma.internal/api/returns");
    if b.alive() && b.rng.chance(0.5) {
        let ctx = b.context();
        b.llm("Reply", &ctx, (50, 200));
    }
}
