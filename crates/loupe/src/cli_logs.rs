//! `loupe logs send FILE…`: a one-off import of JSON-lines (or plain text)
//! files into a running `loupe serve`, through its Elasticsearch-compatible
//! bulk API (`/es/_bulk`), with a progress bar over the bytes sent.
//!
//! A line that is a JSON object is sent as the document; any other line as
//! `{"message": line}`. The stream (index) is `--index`, else the file's
//! name lowercased. Batches are retried on 429/503 (after `Retry-After`);
//! items the server refuses are counted and the first reasons printed, and
//! the command then fails, so a script notices. Use `serve`'s `[logs]
//! files` for files that keep growing: it resumes where it stopped.

use std::io::BufRead as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// Flags of `loupe logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    #[command(subcommand)]
    command: LogsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum LogsCommand {
    /// Send files of log lines (JSON lines or text) to a server.
    Send(SendArgs),
}

#[derive(Debug, clap::Args)]
struct SendArgs {
    /// Files to send, in order.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Base URL of a running `loupe serve`.
    #[arg(long, env = "LOUPE_SERVER", default_value = "http://127.0.0.1:4318")]
    server: String,
    /// Public key for HTTP Basic auth (with --secret-key; an ingest key).
    #[arg(long, env = "LOUPE_PUBLIC_KEY")]
    public_key: Option<String>,
    /// Secret key for HTTP Basic auth.
    #[arg(long, env = "LOUPE_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    /// Stream (Elasticsearch index) of every line. Default: each file's name.
    #[arg(long)]
    index: Option<String>,
    /// Lines per request.
    #[arg(long, default_value_t = 5_000)]
    batch: usize,
}

/// Runs `loupe logs …`.
pub fn run(args: LogsArgs) -> anyhow::Result<()> {
    let LogsCommand::Send(args) = args.command;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(send(args))
}

/// What the server did with the items sent.
#[derive(Default)]
struct Tally {
    stored: u64,
    refused: u64,
    reasons: Vec<String>,
}

async fn send(args: SendArgs) -> anyhow::Result<()> {
    let batch = args.batch.clamp(1, 50_000);
    let total: u64 = args
        .files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()))
        .sum::<std::io::Result<u64>>()
        .context("cannot read a file's size")?;
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:20} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let client = reqwest::Client::new();
    let url = format!("{}/es/_bulk", args.server.trim_end_matches('/'));
    let mut tally = Tally::default();
    for path in &args.files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_else(|| "logs".into());
        let index = args.index.clone().unwrap_or(name.clone());
        bar.set_message(name);
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut reader = std::io::BufReader::new(file);
        let mut body = String::new();
        let mut lines = 0usize;
        let mut bytes = 0u64;
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .with_context(|| format!("cannot read {}", path.display()))?;
            if n > 0 {
                bytes += n as u64;
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches(['\n', '\r']);
                if !text.trim().is_empty() {
                    push_item(&mut body, &index, text);
                    lines += 1;
                }
            }
            if (n == 0 && lines > 0) || lines >= batch {
                post(&client, &url, &args, std::mem::take(&mut body), &mut tally).await?;
                lines = 0;
                bar.inc(std::mem::take(&mut bytes));
            }
            if n == 0 {
                bar.inc(bytes);
                break;
            }
        }
    }
    bar.finish_and_clear();
    println!("{} lines stored, {} refused", tally.stored, tally.refused);
    if tally.refused > 0 {
        for reason in &tally.reasons {
            eprintln!("  {reason}");
        }
        bail!("{} lines were refused", tally.refused);
    }
    Ok(())
}

/// Appends one bulk item: the line as the document when it is a JSON
/// object, else as its message.
fn push_item(body: &mut String, index: &str, line: &str) {
    body.push_str(&json!({"index": {"_index": index}}).to_string());
    body.push('\n');
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(_)) => body.push_str(line),
        _ => body.push_str(&json!({ "message": line }).to_string()),
    }
    body.push('\n');
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    args: &SendArgs,
    body: String,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let mut attempt = 0u32;
    loop {
        let mut req = client
            .post(url)
            .header("content-type", "application/x-ndjson")
            .body(body.clone());
        if let Some(pk) = &args.public_key {
            req = req.basic_auth(pk, args.secret_key.as_deref());
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let status = resp.status();
        if (status.as_u16() == 429 || status.as_u16() == 503) && attempt < 10 {
            attempt += 1;
            let wait = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1);
            tokio::time::sleep(Duration::from_secs(wait.min(30))).await;
            continue;
        }
        let reply: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{url} answered {status}: {reply}");
        }
        for item in reply["items"].as_array().into_iter().flatten() {
            let Some(result) = item.as_object().and_then(|o| o.values().next()) else {
                continue;
            };
            if result["status"].as_u64().is_some_and(|s| s < 300) {
                tally.stored += 1;
            } else {
                tally.refused += 1;
                if tally.reasons.len() < 10 {
                    tally
                        .reasons
                        .push(result["error"]["reason"].as_str().unwrap_or("?").to_owned());
                }
            }
        }
        return Ok(());
    }
}
