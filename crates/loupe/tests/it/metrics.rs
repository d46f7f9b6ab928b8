//! `/metrics` against a real Prometheus (Debian package, see
//! `scripts/peers/prometheus.sh`): Prometheus scrapes a running `loupe
//! serve` every second while generated traffic flows, and the seed's PromQL
//! returns what the generated spans imply. Also: the shipped alerting rules
//! pass `promtool check rules`, and the shipped rules and Grafana dashboards
//! name only metrics Loupe exports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use loupe_gen::{Fault, GenConfig};
use loupe_model::{SpanKind, Status};
use prost::Message;
use serde_json::Value;

use crate::support::{Server, free_port};

const PEER_SCRIPT: &str = "scripts/peers/prometheus.sh";

fn peer_binary(var: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => {
            panic!("{var} is not set: run `eval \"$({PEER_SCRIPT})\"` first (scripts/test.sh does)")
        }
    }
}

fn repo() -> PathBuf {
    std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../..")
}

/// A Prometheus child process, killed on drop.
struct Prometheus {
    child: Child,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    async fn start(dir: &Path, target: &str) -> Prometheus {
        let bin = peer_binary("LOUPE_TEST_PROMETHEUS");
        let port = free_port();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: loupe\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("prometheus.yml");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn prometheus");
        let prom = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = client.get(format!("{}/-/ready", prom.url)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return prom;
            }
            assert!(Instant::now() < deadline, "prometheus did not become ready");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// An instant query: label set (without `__name__`) → value.
    async fn query(&self, promql: &str) -> BTreeMap<BTreeMap<String, String>, f64> {
        let body: Value = reqwest::Client::new()
            .post(format!("{}/api/v1/query", self.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("query={}", form_encode(promql)))
            .send()
            .await
            .expect("query")
            .json()
            .await
            .expect("json");
        assert_eq!(body["status"], "success", "{promql}: {body}");
        let mut out = BTreeMap::new();
        for r in body["data"]["result"].as_array().into_iter().flatten() {
            let labels = r["metric"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| *k != "__name__")
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect();
            let value = r["value"][1]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN);
            out.insert(labels, value);
        }
        out
    }

    /// The single value of a query, waiting until it equals `want`.
    async fn wait_for(&self, promql: &str, want: f64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = self.query(promql).await;
            if got.len() == 1 && got.values().all(|v| (v - want).abs() < 1e-9) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{promql}: still {got:?}, expected {want}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// What the generated spans imply.
#[derive(Default, Debug)]
struct Expected {
    runs_by_status: BTreeMap<&'static str, u64>,
    runs_by_category: BTreeMap<String, (u64, u64)>,
    inventory_by_category: BTreeMap<String, (u64, u64)>,
    inventory_ok: u64,
    inventory_failed: u64,
}

fn expected(config: &GenConfig) -> Expected {
    let mut e = Expected::default();
    for run in loupe_gen::runs(config) {
        let category = run.inputs["category"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        for s in &run.spans {
            match s.span_kind {
                Some(SpanKind::Workflow) => {
                    let ok = s.status == Some(Status::Ok);
                    *e.runs_by_status
                        .entry(if ok { "success" } else { "failed" })
                        .or_default() += 1;
                    let c = e.runs_by_category.entry(category.clone()).or_default();
                    c.0 += u64::from(ok);
                    c.1 += 1;
                }
                Some(SpanKind::Tool) if s.tool_name.as_deref() == Some("inventory") => {
                    let us = (s.duration_ns().unwrap_or(0) / 1_000) as u64;
                    let c = e.inventory_by_category.entry(category.clone()).or_default();
                    c.0 += us;
                    c.1 += 1;
                    if s.status == Some(Status::Error) {
                        e.inventory_failed += 1;
                    } else {
                        e.inventory_ok += 1;
                    }
                }
                _ => {}
            }
        }
    }
    e
}

fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_seed_metrics_and_the_seed_promql_matches_the_traffic() {
    let prometheus_bin = peer_binary("LOUPE_TEST_PROMETHEUS");
    assert!(prometheus_bin.exists(), "{}", prometheus_bin.display());
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("loupe.toml");
    std::fs::write(
        &config_path,
        "[auth]\nmetrics_public = true\n\n[metrics]\nlabels = [\"category\"]\n\n\
         [[tags]]\nname = \"category\"\nfrom = \"input\"\npath = \"category\"\n",
    )
    .expect("config");
    let data = dir.path().join("data");
    let server = Server::start_with_config(&data, &[], Some(&config_path)).await;
    let target = server.http.trim_start_matches("http://").to_owned();
    let prom = Prometheus::start(dir.path(), &target).await;

    let start = loupe_gen::DEFAULT_START_NS;
    let hour = 3_600_000_000_000;
    let config = GenConfig {
        seed: 11,
        runs: 80,
        start_ns: start,
        spread_ns: hour,
        faults: vec![
            Fault::parse(
                "tool=inventory,error_rate=0.4,latency=800ms",
                (start, start + hour),
            )
            .expect("fault"),
        ],
        ..GenConfig::default()
    };
    let want = expected(&config);
    let runs: u64 = want.runs_by_status.values().sum();
    assert_eq!(runs, 80, "one workflow span per run: {want:?}");
    assert!(
        want.inventory_failed > 0 && want.inventory_ok > 0,
        "{want:?}"
    );
    for request in loupe_gen::otlp::requests(&config, 4) {
        let r = server.post_otlp(request.encode_to_vec()).await;
        assert!(r.status().is_success(), "{}", r.status());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Wait until Prometheus has scraped the final values.
    let inventory_total = want.inventory_ok + want.inventory_failed;
    prom.wait_for(
        "sum(workflow_tool_duration_seconds_count{tool_name=\"inventory\"})",
        inventory_total as f64,
    )
    .await;
    prom.wait_for("sum(workflow_execution_status_total)", runs as f64)
        .await;

    // The seed's tool performance panel: average inventory latency.
    let avg = prom
        .query(
            "workflow_tool_duration_seconds_sum{tool_name=\"inventory\"} / \
             workflow_tool_duration_seconds_count{tool_name=\"inventory\"}",
        )
        .await;
    let by_category: BTreeMap<String, f64> = avg
        .iter()
        .map(|(l, v)| (l.get("category").cloned().unwrap_or_default(), *v))
        .collect();
    assert_eq!(
        by_category.keys().collect::<Vec<_>>(),
        want.inventory_by_category.keys().collect::<Vec<_>>()
    );
    for (category, (sum_us, n)) in &want.inventory_by_category {
        let expect = *sum_us as f64 / 1e6 / *n as f64;
        assert!(
            close(by_category[category], expect),
            "{category}: {} vs {expect}",
            by_category[category]
        );
    }
    let (sum_us, n) = want
        .inventory_by_category
        .values()
        .fold((0, 0), |(s, c), (a, b)| (s + a, c + b));
    let overall = prom
        .query(
            "sum(workflow_tool_duration_seconds_sum{tool_name=\"inventory\"}) / \
             sum(workflow_tool_duration_seconds_count{tool_name=\"inventory\"})",
        )
        .await;
    let overall = overall.values().next().copied().unwrap_or(f64::NAN);
    assert!(close(overall, sum_us as f64 / 1e6 / n as f64), "{overall}");

    // The seed's overview panel: success and failed runs.
    for status in ["success", "failed"] {
        let got = prom
            .query(&format!(
                "sum(workflow_execution_status_total{{status=\"{status}\"}})"
            ))
            .await;
        let want_n = want.runs_by_status.get(status).copied().unwrap_or(0) as f64;
        assert_eq!(
            got.values().copied().collect::<Vec<_>>(),
            vec![want_n],
            "{status}"
        );
    }
    let ok = prom
        .query("workflow_tool_success_total{tool_name=\"inventory\"}")
        .await;
    assert_eq!(
        ok.values().copied().collect::<Vec<_>>(),
        vec![want.inventory_ok as f64]
    );
    let failed = prom
        .query("workflow_tool_failure_total{tool_name=\"inventory\"}")
        .await;
    assert_eq!(
        failed.values().copied().collect::<Vec<_>>(),
        vec![want.inventory_failed as f64]
    );

    // The seed's category analysis: success rate per category.
    let rate = prom
        .query(
            "sum by (category) (workflow_execution_status_total{status=\"success\"}) / \
             sum by (category) (workflow_execution_status_total)",
        )
        .await;
    for (category, (ok, all)) in &want.runs_by_category {
        let got = rate
            .iter()
            .find(|(l, _)| l.get("category") == Some(category))
            .map(|(_, v)| *v);
        assert_eq!(got, Some(*ok as f64 / *all as f64), "{category}");
    }
    drop(prom);

    // Counters are cumulative across a restart (rate() keeps working).
    let before = scrape(&server).await;
    server.stop();
    let server = Server::start_with_config(&data, &[], Some(&config_path)).await;
    let after = scrape(&server).await;
    let seed_lines = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("workflow_"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(seed_lines(&after), seed_lines(&before));
    assert!(!seed_lines(&before).is_empty());
    // Loupe's own operational metrics are served beside the store's.
    assert!(
        after
            .lines()
            .any(|l| l.starts_with("loupe_ingest_refused_total ")),
        "{after}"
    );
    server.stop();
}

async fn scrape(server: &Server) -> String {
    let r = server
        .client
        .get(format!("{}/metrics", server.http))
        .send()
        .await
        .expect("scrape");
    assert!(r.status().is_success());
    r.text().await.expect("body")
}

/// Metric names in an exposition body, with histogram suffixes.
fn exported_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        names.insert(name.to_owned());
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                names.insert(base.to_owned());
            }
        }
    }
    names
}

/// Identifiers in `text` that look like Loupe or seed metric names
/// (outside double quotes: label values such as
/// `table="workflow_node_executions"` are not metric names).
fn referenced_names(text: &str) -> BTreeSet<String> {
    let mut quoted = false;
    let text: String = text
        .chars()
        .map(|c| {
            if c == '"' {
                quoted = !quoted;
                ' '
            } else if quoted {
                ' '
            } else {
                c
            }
        })
        .collect();
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.starts_with("workflow_") || w.starts_with("loupe_"))
        .map(str::to_owned)
        .collect()
}

async fn exposition_of_generated_data() -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = loupe_store::Store::open(
        loupe_store::StoreConfig {
            data_dir: dir.path().to_owned(),
            ..loupe_store::StoreConfig::default()
        },
        loupe_rollup::RollupConfig::default(),
    )
    .expect("open store");
    let start = loupe_gen::DEFAULT_START_NS;
    let day = 86_400_000_000_000;
    let config = GenConfig {
        runs: 40,
        faults: vec![
            Fault::parse("tool=inventory,error_rate=0.5", (start, start + day)).expect("fault"),
        ],
        ..GenConfig::default()
    };
    let mut spans = Vec::new();
    for run in loupe_gen::runs(&config) {
        let category = run.inputs["category"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        for mut s in run.spans {
            s.tags.insert("category".into(), category.clone());
            spans.push(s);
        }
    }
    store.append(spans).await.expect("append");
    store.render_metrics(loupe_rollup::expose::Format::Prometheus, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_rules_pass_promtool_and_dashboards_use_only_exported_metrics() {
    let rules = repo().join("deploy/prometheus/rules.yml");
    let promtool = peer_binary("LOUPE_TEST_PROMTOOL");
    let out = Command::new(promtool)
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool check rules failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let exported = exposition_of_generated_data().await;
    let names = exported_names(&exported);
    for seed in [
        "workflow_execution_status_total",
        "workflow_tool_duration_seconds_bucket",
        "workflow_tool_duration_seconds_sum",
        "workflow_tool_duration_seconds_count",
        "workflow_tool_success_total",
        "workflow_tool_failure_total",
        "loupe_ingest_spans_total",
        "loupe_wal_unflushed_bytes",
        "loupe_store_part_bytes",
        "loupe_rollup_folded_series_total",
    ] {
        assert!(names.contains(seed), "{seed} not exported:\n{exported}");
    }
    let rules_text = std::fs::read_to_string(&rules).expect("rules.yml");
    let unknown: Vec<_> = referenced_names(&rules_text)
        .difference(&names)
        .cloned()
        .collect();
    assert!(
        unknown.is_empty(),
        "rules.yml names unexported metrics {unknown:?}"
    );

    let dashboards = repo().join("deploy/grafana");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dashboards).expect("deploy/grafana") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        seen += 1;
        let text = std::fs::read_to_string(&path).expect("read");
        let json: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut exprs = Vec::new();
        collect_exprs(&json, &mut exprs);
        assert!(!exprs.is_empty(), "{}: no queries", path.display());
        for expr in exprs {
            let unknown: Vec<_> = referenced_names(&expr)
                .difference(&names)
                .cloned()
                .collect();
            assert!(
                unknown.is_empty(),
                "{}: {expr:?} names unexported metrics {unknown:?}",
                path.display()
            );
        }
    }
    assert_eq!(
        seen, 4,
        "workflow overview, tool performance, category analysis, dify database"
    );
}

fn collect_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", Value::String(s)) => out.push(s.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_exprs(i, out)),
        _ => {}
    }
}
