//! `loupe gen`: generate a deterministic synthetic Dify workload (see
//! `loupe-gen`) and send it over OTLP/HTTP or the Langfuse API, or write it
//! straight into a data directory, with a progress bar.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use loupe_gen::{Fault, GenConfig};
use loupe_pipeline::Pipeline;
use prost::Message as _;

const DAY_NS: f64 = 86_400e9;

/// Flags of `loupe gen`.
#[derive(Debug, clap::Args)]
#[command(group(
    clap::ArgGroup::new("target").required(true).args(["otlp", "langfuse", "data_dir"])
))]
pub struct GenArgs {
    /// Number of runs to generate.
    #[arg(long, default_value_t = 1000)]
    runs: usize,
    /// PRNG seed: the same seed, runs, start and days give the same data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Spread the runs over this many days.
    #[arg(long, default_value_t = 1.0)]
    days: f64,
    /// Start of the window (RFC 3339 or ns since the epoch). Default: now - days.
    #[arg(long)]
    start: Option<String>,
    /// Inject a fault, e.g.
    /// 'tool=inventory,category=phone,from=2026-01-01T06:00:00Z,to=…,error_rate=0.8,latency=2s'
    /// (from/to default to the whole window). Repeatable.
    #[arg(long = "fault")]
    faults: Vec<String>,
    /// Send OTLP/HTTP protobuf to this base URL (…/v1/traces is appended).
    #[arg(long)]
    otlp: Option<String>,
    /// Send Langfuse ingestion batches to this base URL (…/api/public/ingestion is appended).
    #[arg(long)]
    langfuse: Option<String>,
    /// Write straight into this data directory (no server may be using it).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Project of the spans written with --data-dir (over HTTP the key decides).
    #[arg(long, default_value = "default")]
    project: String,
    /// With --data-dir: config file whose store settings and tag rules apply
    /// (default: built-in store settings and the category/tier tag rules).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Public key for HTTP Basic auth.
    #[arg(long, env = "LOUPE_PUBLIC_KEY")]
    public_key: Option<String>,
    /// Secret key for HTTP Basic auth.
    #[arg(long, env = "LOUPE_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    /// Runs per request (or per store append).
    #[arg(long, default_value_t = 10)]
    batch: usize,
    /// Throttle to this many runs per second.
    #[arg(long)]
    rate: Option<f64>,
}

/// Runs `loupe gen`.
pub fn run(args: GenArgs) -> anyhow::Result<()> {
    let config = gen_config(&args)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(generate(args, config))
}

fn gen_config(args: &GenArgs) -> anyhow::Result<GenConfig> {
    if !(args.days.is_finite() && args.days > 0.0) {
        bail!("--days must be a positive number");
    }
    let spread_ns = (args.days * DAY_NS) as i64;
    let start_ns = match &args.start {
        Some(text) => parse_time(text)?,
        None => chrono::Utc::now()
            .timestamp_nanos_opt()
            .context("the clock is past 2262")?
            .saturating_sub(spread_ns),
    };
    let window = (start_ns, start_ns.saturating_add(spread_ns));
    let faults = args
        .faults
        .iter()
        .map(|spec| Fault::parse(spec, window))
        .collect::<Result<Vec<_>, _>>()?;
    loupe_model::ProjectId::new(args.project.clone())?;
    Ok(GenConfig {
        seed: args.seed,
        runs: args.runs,
        start_ns,
        spread_ns,
        project: args.project.clone(),
        faults,
    })
}

fn parse_time(text: &str) -> anyhow::Result<i64> {
    loupe_model::time::parse_instant(text).context("--start")
}

/// Progress over runs, with the span/event count in the message.
struct Progress {
    bar: ProgressBar,
    started: Instant,
    runs: u64,
    items: u64,
    rate: Option<f64>,
}

impl Progress {
    fn new(total: usize, rate: Option<f64>) -> Self {
        let bar = ProgressBar::new(total as u64);
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} runs ({per_sec}, eta {eta}) {msg}",
        ) {
            bar.set_style(style);
        }
        Self {
            bar,
            started: Instant::now(),
            runs: 0,
            items: 0,
            rate: rate.filter(|r| r.is_finite() && *r > 0.0),
        }
    }

    async fn advance(&mut self, runs: usize, items: usize, what: &str) {
        self.runs += runs as u64;
        self.items += items as u64;
        self.bar.set_position(self.runs);
        self.bar.set_message(format!("{} {what}", self.items));
        if let Some(rate) = self.rate {
            let due = Duration::from_secs_f64(self.runs as f64 / rate);
            let elapsed = self.started.elapsed();
            if due > elapsed {
                tokio::time::sleep(due - elapsed).await;
            }
        }
    }

    fn finish(&self, what: &str) {
        self.bar
            .finish_with_message(format!("{} {what}", self.items));
        eprintln!(
            "generated {} runs ({} {what}) in {:.1?}",
            self.runs,
            self.items,
            self.started.elapsed()
        );
    }
}

async fn generate(args: GenArgs, config: GenConfig) -> anyhow::Result<()> {
    let batch = args.batch.max(1);
    let mut progress = Progress::new(config.runs, args.rate);
    let mut remaining = config.runs;
    let mut take = || {
        let n = remaining.min(batch);
        remaining -= n;
        n
    };
    if let Some(dir) = &args.data_dir {
        let mut loupe_config = crate::open::ConfigArgs {
            config: args.config.clone(),
            data_dir: Some(dir.clone()),
        }
        .resolve()?;
        if args.config.is_none() {
            loupe_config.tags = loupe_gen::tag_rules();
        }
        let store = crate::open::open_store(&mut loupe_config, crate::open::Mode::Write).await?;
        let background = store.spawn_background();
        let pipeline = crate::open::pipeline(&loupe_config, &store)?;
        let mut runs = loupe_gen::runs(&config).peekable();
        while runs.peek().is_some() {
            let spans: Vec<_> = runs.by_ref().take(batch).flat_map(|r| r.spans).collect();
            let count = spans.len();
            append(&pipeline, spans).await?;
            progress.advance(take(), count, "spans").await;
        }
        background.abort();
        store.shutdown().await.context("flush on shutdown failed")?;
        progress.finish("spans");
        return Ok(());
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .context("cannot build the HTTP client")?;
    let auth = match (&args.public_key, &args.secret_key) {
        (Some(p), Some(s)) => Some((p.clone(), Some(s.clone()))),
        (None, Some(s)) => Some((String::new(), Some(s.clone()))),
        (Some(_), None) => bail!("--public-key needs --secret-key"),
        (None, None) => None,
    };
    let send = |url: String, body: Vec<u8>, content_type: &'static str| {
        let mut request = client
            .post(url)
            .header("content-type", content_type)
            .body(body);
        if let Some((user, password)) = &auth {
            request = if user.is_empty() {
                request.bearer_auth(password.clone().unwrap_or_default())
            } else {
                request.basic_auth(user, password.clone())
            };
        }
        request
    };
    if let Some(base) = &args.otlp {
        let url = endpoint(base, "/v1/traces");
        for request in loupe_gen::otlp::requests(&config, batch) {
            let count = loupe_gen::otlp::span_count(&request);
            let body = request.encode_to_vec();
            post(|| send(url.clone(), body.clone(), "application/x-protobuf")).await?;
            progress.advance(take(), count, "spans").await;
        }
        progress.finish("spans");
    } else if let Some(base) = &args.langfuse {
        let url = endpoint(base, "/api/public/ingestion");
        for body in loupe_gen::langfuse::batches(&config, batch) {
            let count = loupe_gen::langfuse::event_count(&body);
            let bytes = serde_json::to_vec(&body)?;
            post(|| send(url.clone(), bytes.clone(), "application/json")).await?;
            progress.advance(take(), count, "events").await;
        }
        progress.finish("events");
    }
    Ok(())
}

/// `base` with `path` appended unless it already ends with it.
fn endpoint(base: &str, path: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with(path) {
        base.to_owned()
    } else {
        format!("{base}{path}")
    }
}

/// Sends with retries on 429/503 and connection errors (5 attempts).
async fn post(request: impl Fn() -> reqwest::RequestBuilder) -> anyhow::Result<()> {
    let mut delay = Duration::from_millis(200);
    for attempt in 1..=5 {
        let last = attempt == 5;
        match request().send().await {
            Ok(r) if r.status().is_success() => {
                // Langfuse answers 207 with per-event errors.
                if r.status().as_u16() == 207 {
                    let body: serde_json::Value = r.json().await.unwrap_or_default();
                    if let Some(errors) = body["errors"].as_array().filter(|e| !e.is_empty()) {
                        bail!(
                            "server rejected {} events, first: {}",
                            errors.len(),
                            errors[0]
                        );
                    }
                }
                return Ok(());
            }
            Ok(r) if !last && matches!(r.status().as_u16(), 429 | 502 | 503 | 504) => {}
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                bail!("server answered {status}: {text}");
            }
            Err(e) if !last && (e.is_connect() || e.is_timeout()) => {}
            Err(e) => return Err(e).context("request failed"),
        }
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
    bail!("gave up after 5 attempts")
}

/// Appends, waiting while the store is over its memory budget.
async fn append(pipeline: &Pipeline, spans: Vec<loupe_model::Span>) -> anyhow::Result<()> {
    pipeline
        .write_waiting(spans, Duration::from_millis(100))
        .await
        .context("append failed")?;
    Ok(())
}
