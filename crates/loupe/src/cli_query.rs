//! `loupe query '<text>'` and `loupe sql '<sql>'`: ask a question from the
//! command line, against a running server (`--server`, default the local
//! one) or straight from a data directory (`--data-dir`, opened read-only
//! with `Store::open_read_only`, so it works beside a running server).
//!
//! Output: an aligned table on stdout (stats on stderr), `--json` for the
//! API's JSON answer, or `--output FILE` for a CSV / JSON lines / Parquet
//! export picked by the extension (the whole answer, no row cap for
//! queries). Exit codes: 0 success, 2 a query that does not parse or check
//! (the caret rendering is printed), 1 anything else.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampNanosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use futures::StreamExt;
use loupe_backend::plan::ValueType;
use loupe_backend::{QueryLimits, QueryResult};
use loupe_model::ProjectId;
use loupe_query::export::{Encoder, Format};
use loupe_query::{PlanOptions, Query};
use loupe_store::Store;
use serde_json::{Value, json};

mod table;

/// Where the question goes.
#[derive(Debug, clap::Args)]
pub struct SourceArgs {
    /// Base URL of a running `loupe serve`.
    #[arg(long, env = "LOUPE_SERVER", default_value = "http://127.0.0.1:4318")]
    pub(crate) server: String,
    /// Public key for HTTP Basic auth (with --secret-key).
    #[arg(long, env = "LOUPE_PUBLIC_KEY")]
    public_key: Option<String>,
    /// Secret key for HTTP Basic auth.
    #[arg(long, env = "LOUPE_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    /// Query this data directory directly instead of a server. It is opened
    /// read-only: nothing is written, and a server may be running on it.
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
    /// With --data-dir: the config file (`loupe serve`'s); the directory's
    /// recorded retention and rollup labels apply either way.
    #[arg(long, env = "LOUPE_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Project to query with --data-dir (over HTTP the key decides).
    #[arg(long, default_value = "default")]
    pub(crate) project: String,
}

/// How the answer is shown.
#[derive(Debug, clap::Args)]
pub struct OutputArgs {
    /// Print the API's JSON answer instead of a table.
    #[arg(long, conflicts_with = "output")]
    json: bool,
    /// Write the whole answer to FILE; .csv, .jsonl (or .ndjson) or .parquet.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// Flags of `loupe query`.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// The query, e.g. 'status=error | by tool_name | count(), p95(duration)'.
    query: String,
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    out: OutputArgs,
    /// "Now" for `last D` and the default 24 h window: RFC 3339 or ns since
    /// the epoch. Default: the current time.
    #[arg(long, value_name = "T")]
    now: Option<String>,
}

/// Flags of `loupe sql`.
#[derive(Debug, clap::Args)]
pub struct SqlArgs {
    /// One read-only statement over `spans`, e.g. 'SELECT status, count(*) FROM spans GROUP BY 1'.
    sql: String,
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    out: OutputArgs,
}

/// Why a command failed: a query error (exit 2) or anything else (exit 1).
pub(crate) enum Failure {
    /// The caret rendering of a query that does not parse or check.
    Query(String),
    Other(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Other(e.into())
    }
}

/// Runs `loupe query`.
pub fn query(args: QueryArgs) -> ExitCode {
    finish(block_on(run_query(args)))
}

/// Runs `loupe sql`.
pub fn sql(args: SqlArgs) -> ExitCode {
    finish(block_on(run_sql(args)))
}

pub(crate) fn block_on(fut: impl Future<Output = Result<(), Failure>>) -> Result<(), Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(fut)
}

pub(crate) fn finish(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Query(rendered)) => {
            eprint!("{rendered}");
            if !rendered.ends_with('\n') {
                eprintln!();
            }
            ExitCode::from(2)
        }
        Err(Failure::Other(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_query(args: QueryArgs) -> Result<(), Failure> {
    let format = export_format(args.out.output.as_deref())?;
    let Some(dir) = &args.source.data_dir else {
        let server = Server::new(&args.source)?;
        let mut body = json!({ "q": args.query });
        if let Some(now) = &args.now {
            body["now"] = now.parse::<i64>().map_or_else(|_| json!(now), |n| json!(n));
        }
        return match (&args.out.output, format) {
            (Some(path), Some(format)) => {
                let url = format!("/api/v1/query?format={}", format_name(format));
                let resp = server.post(&url, &body).await?;
                download(resp, path).await
            }
            _ => print_answer(server.post_json("/api/v1/query", &body).await?, &args.out),
        };
    };
    let parsed = Query::parse(&args.query).map_err(|e| Failure::Query(e.render(&args.query)))?;
    let mut opts = PlanOptions::at(now_ns(args.now.as_deref())?);
    if format.is_some() {
        opts.default_row_limit = None;
    }
    let plan = loupe_query::plan(&parsed, opts).map_err(|e| anyhow!("{}", e.message))?;
    let (store, project) = open_dir(dir, &args.source).await?;
    let limits = QueryLimits::default();
    match (&args.out.output, format) {
        (Some(path), Some(format)) => {
            let mut stream = store.query_plan_stream(&project, &plan, limits).await?;
            let mut file = OutFile::create(path)?;
            let mut encoder = Encoder::new(format);
            while let Some(batch) = stream.next().await {
                file.write(&encoder.push(&batch?)?)?;
            }
            file.write(&encoder.finish()?)?;
            file.done()
        }
        _ => {
            let result = store.query_plan(&project, &plan, limits).await?;
            print_answer(serde_json::to_value(result)?, &args.out)
        }
    }
}

async fn run_sql(args: SqlArgs) -> Result<(), Failure> {
    let format = export_format(args.out.output.as_deref())?;
    let answer = match &args.source.data_dir {
        None => {
            let server = Server::new(&args.source)?;
            server
                .post_json("/api/v1/sql", &json!({ "sql": args.sql }))
                .await?
        }
        Some(dir) => {
            let (store, project) = open_dir(dir, &args.source).await?;
            let result = store
                .read_only_sql(&project, &args.sql, QueryLimits::default())
                .await
                .map_err(|e| match e {
                    loupe_store::Error::Invalid(m) => anyhow!("the SQL was refused: {m}"),
                    other => anyhow!(other),
                })?;
            serde_json::to_value(result)?
        }
    };
    match (&args.out.output, format) {
        (Some(path), Some(format)) => {
            let result: QueryResult =
                serde_json::from_value(answer).context("the answer is not a query result")?;
            let batch = result_batch(&result)?;
            let mut file = OutFile::create(path)?;
            let mut encoder = Encoder::new(format);
            file.write(&encoder.push(&batch)?)?;
            file.write(&encoder.finish()?)?;
            file.done()
        }
        _ => print_answer(answer, &args.out),
    }
}

/// The export format `--output`'s extension names.
fn export_format(path: Option<&Path>) -> anyhow::Result<Option<Format>> {
    path.map(|p| {
        Format::from_path(p).with_context(|| {
            format!(
                "--output {}: name the file .csv, .jsonl or .parquet to pick the format",
                p.display()
            )
        })
    })
    .transpose()
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Csv => "csv",
        Format::Jsonl => "jsonl",
        Format::Parquet => "parquet",
    }
}

pub(crate) fn now_ns(text: Option<&str>) -> anyhow::Result<i64> {
    match text {
        None => Ok(loupe_model::time::now_ns()),
        Some(t) => loupe_model::time::parse_instant(t).context("--now"),
    }
}

pub(crate) async fn open_dir(
    dir: &Path,
    source: &SourceArgs,
) -> anyhow::Result<(Store, ProjectId)> {
    let project = ProjectId::new(source.project.clone())
        .with_context(|| format!("--project {:?} is not a valid project name", source.project))?;
    let mut config = crate::open::ConfigArgs {
        config: source.config.clone(),
        data_dir: Some(dir.to_owned()),
    }
    .resolve()?;
    let store = crate::open::open_store(&mut config, crate::open::Mode::ReadOnly)
        .await
        .context("check --data-dir")?;
    Ok((store, project))
}

/// A server and how to authenticate.
pub(crate) struct Server {
    base: String,
    client: reqwest::Client,
    auth: Option<(String, String)>,
}

impl Server {
    pub(crate) fn new(args: &SourceArgs) -> anyhow::Result<Self> {
        Self::with_keys(&args.server, &args.public_key, &args.secret_key)
    }

    /// The server at `base`, with Basic auth when both keys are given.
    pub(crate) fn with_keys(
        base: &str,
        public_key: &Option<String>,
        secret_key: &Option<String>,
    ) -> anyhow::Result<Self> {
        let auth = match (public_key, secret_key) {
            (Some(p), Some(s)) => Some((p.clone(), s.clone())),
            (None, None) => None,
            _ => bail!(
                "pass both --public-key and --secret-key (or LOUPE_PUBLIC_KEY and LOUPE_SECRET_KEY)"
            ),
        };
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            client: reqwest::Client::new(),
            auth,
        })
    }

    /// POSTs JSON; a non-2xx answer becomes the right [`Failure`].
    pub(crate) async fn post(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<reqwest::Response, Failure> {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    /// Any method, with a JSON body or none; a non-2xx answer becomes the
    /// right [`Failure`].
    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<reqwest::Response, Failure> {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            req = req.json(body);
        }
        if let Some((user, secret)) = &self.auth {
            req = req.basic_auth(user, Some(secret));
        }
        let resp = req.send().await.map_err(|e| {
            anyhow!(
                "cannot reach the Loupe server at {} ({e}): start `loupe serve`, point --server \
                 (or LOUPE_SERVER) at it, or query a data directory with --data-dir",
                self.base
            )
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if let Some(rendered) = body["rendered"].as_str() {
            return Err(Failure::Query(rendered.to_owned()));
        }
        let message = body["error"].as_str().unwrap_or("no error message");
        Err(Failure::Other(match status.as_u16() {
            401 | 403 => anyhow!(
                "the server refused the request ({status}: {message}); pass --public-key and \
                 --secret-key (or LOUPE_PUBLIC_KEY / LOUPE_SECRET_KEY) of the project"
            ),
            _ => anyhow!("the server answered {status}: {message}"),
        }))
    }

    pub(crate) async fn post_json(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        self.send_json(reqwest::Method::POST, path, Some(body))
            .await
    }

    /// As [`Self::send`], the answer read as JSON.
    pub(crate) async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        let resp = self.send(method, path, body).await?;
        Ok(resp
            .json()
            .await
            .context("the server's answer is not JSON")?)
    }
}

/// A file being written; removed unless [`OutFile::done`] is reached.
struct OutFile {
    path: PathBuf,
    file: Option<std::fs::File>,
}

impl OutFile {
    fn create(path: &Path) -> anyhow::Result<Self> {
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self {
            path: path.to_owned(),
            file: Some(file),
        })
    }

    fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        use std::io::Write;
        if let Some(f) = &mut self.file {
            f.write_all(bytes)
                .with_context(|| format!("cannot write {}", self.path.display()))?;
        }
        Ok(())
    }

    fn done(mut self) -> Result<(), Failure> {
        if let Some(f) = self.file.take() {
            f.sync_all()
                .with_context(|| format!("cannot write {}", self.path.display()))?;
        }
        eprintln!("wrote {}", self.path.display());
        Ok(())
    }
}

impl Drop for OutFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Streams a response body into `path`.
async fn download(mut resp: reqwest::Response, path: &Path) -> Result<(), Failure> {
    let mut file = OutFile::create(path)?;
    while let Some(chunk) = resp
        .chunk()
        .await
        .context("the server broke off the export")?
    {
        file.write(&chunk)?;
    }
    file.done()
}

/// Prints a JSON answer (`{"columns", "rows", "stats"}`) as JSON or a table.
fn print_answer(answer: Value, out: &OutputArgs) -> Result<(), Failure> {
    if out.json {
        return stdout(&format!("{}\n", serde_json::to_string_pretty(&answer)?));
    }
    let result: QueryResult =
        serde_json::from_value(answer).context("the answer is not a query result")?;
    stdout(&table::render(&result))?;
    eprintln!("{}", table::summary(&result));
    Ok(())
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
fn stdout(text: &str) -> Result<(), Failure> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// An Arrow batch of a JSON answer (for exports of SQL answers): text and
/// maps as strings, ints and durations as Int64 ns, timestamps as UTC ns.
fn result_batch(result: &QueryResult) -> anyhow::Result<RecordBatch> {
    let mut fields = Vec::with_capacity(result.columns.len());
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(result.columns.len());
    for (i, col) in result.columns.iter().enumerate() {
        let values = result.rows.iter().map(|r| r.get(i).unwrap_or(&Value::Null));
        let (ty, array): (DataType, ArrayRef) = match col.ty {
            ValueType::Int | ValueType::Duration => {
                let mut b = Int64Builder::new();
                values.for_each(|v| b.append_option(v.as_i64()));
                (DataType::Int64, Arc::new(b.finish()))
            }
            ValueType::Timestamp => {
                let mut b = TimestampNanosecondBuilder::new().with_timezone("UTC");
                values.for_each(|v| b.append_option(v.as_i64()));
                let ty = DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
                (ty, Arc::new(b.finish()))
            }
            ValueType::Float => {
                let mut b = Float64Builder::new();
                values.for_each(|v| b.append_option(v.as_f64()));
                (DataType::Float64, Arc::new(b.finish()))
            }
            ValueType::Bool => {
                let mut b = BooleanBuilder::new();
                values.for_each(|v| b.append_option(v.as_bool()));
                (DataType::Boolean, Arc::new(b.finish()))
            }
            _ => {
                let mut b = StringBuilder::new();
                values.for_each(|v| match v {
                    Value::Null => b.append_null(),
                    Value::String(s) => b.append_value(s),
                    other => b.append_value(other.to_string()),
                });
                (DataType::Utf8, Arc::new(b.finish()))
            }
        };
        fields.push(Field::new(col.name.clone(), ty, true));
        arrays.push(array);
    }
    let schema = Arc::new(Schema::new(fields));
    Ok(RecordBatch::try_new(schema, arrays)?)
}
