//! `loupe export`: a query's answer (`--query`), or the raw spans that
//! started in a time range (`--from`/`--to`), as one Parquet file in a
//! directory (`--to-dir`) or an S3 prefix (`--to-s3 s3://bucket/prefix`),
//! for data-lake readers (DuckDB, Spark, Athena).
//!
//! The answer is encoded to a temporary local file first (so a broken
//! connection never leaves half an object), then copied with the cold
//! tier's object-store client (`loupe_store::cold::Destination`) and its
//! stored size checked. Queries run against a data directory
//! (`--data-dir`, opened read-only, so beside a running server) or a
//! server; raw spans come from a data directory (every column as stored).
//! S3 settings: `[store.cold]` of `--config` (endpoint, region, keys,
//! path style), then the `--s3-*` flags, over the `AWS_*` environment.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use futures::StreamExt;
use loupe_query::export::{Encoder, Format};
use loupe_query::{PlanOptions, Query};
use loupe_store::ColdConfig;
use loupe_store::cold::Destination;
use serde_json::json;

use crate::cli_query::{Failure, Server, SourceArgs, block_on, finish, now_ns, open_dir};

/// Flags of `loupe export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Export this query's whole answer, e.g. 'status=error | by tool_name | count()'.
    #[arg(long, required_unless_present = "from", conflicts_with = "from")]
    query: Option<String>,
    /// Export raw spans that started at or after T (RFC 3339 or ns since the epoch); needs --to.
    #[arg(long, value_name = "T", requires = "to")]
    from: Option<String>,
    /// With --from: spans that started before T.
    #[arg(long, value_name = "T", requires = "from")]
    to: Option<String>,
    /// Write the file into this directory (absolute path; created if missing).
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "to_s3",
        conflicts_with = "to_s3"
    )]
    to_dir: Option<PathBuf>,
    /// Write the file under this S3 prefix: s3://bucket/prefix.
    #[arg(long, value_name = "URL")]
    to_s3: Option<String>,
    /// S3 endpoint for MinIO, OSS, COS (default: [store.cold] endpoint, AWS_ENDPOINT_URL, else AWS).
    #[arg(long, value_name = "URL")]
    s3_endpoint: Option<String>,
    /// S3 region (default: [store.cold] region, AWS_REGION, else us-east-1).
    #[arg(long)]
    s3_region: Option<String>,
    /// Path-style S3 requests (MinIO, moto).
    #[arg(long)]
    s3_path_style: bool,
    /// File name (default loupe-export-PROJECT-UTCTIME.parquet).
    #[arg(long)]
    name: Option<String>,
    /// "Now" for a query's `last D` and default window: RFC 3339 or ns.
    #[arg(long, value_name = "T")]
    now: Option<String>,
    #[command(flatten)]
    source: SourceArgs,
}

/// Runs `loupe export`.
pub fn run(args: ExportArgs) -> ExitCode {
    finish(block_on(export(args)))
}

async fn export(args: ExportArgs) -> Result<(), Failure> {
    let dest = destination(&args)?;
    let name = match &args.name {
        Some(n) if n.ends_with(".parquet") => n.clone(),
        Some(n) => format!("{n}.parquet"),
        None => format!(
            "loupe-export-{}-{}.parquet",
            args.source.project,
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        ),
    };
    let temp = TempFile::new()?;
    let bar = progress();
    let rows = match (&args.query, &args.from, &args.to) {
        (Some(q), _, _) => write_query(&args, q, temp.path(), &bar).await?,
        (None, Some(from), Some(to)) => write_spans(&args, from, to, temp.path(), &bar).await?,
        _ => return Err(anyhow!("pass --query, or --from and --to").into()),
    };
    bar.set_message("copying to the destination");
    let (bytes, at) = dest
        .put_file(&name, temp.path())
        .await
        .with_context(|| format!("cannot write {name}"))?;
    bar.finish_and_clear();
    match rows {
        Some(rows) => eprintln!("exported {rows} rows ({bytes} bytes) to {at}"),
        None => eprintln!("exported {bytes} bytes to {at}"),
    }
    Ok(())
}

/// The destination with the S3 settings layered as the module doc says.
fn destination(args: &ExportArgs) -> anyhow::Result<Destination> {
    let mut s3 = match &args.source.config {
        Some(path) => crate::config::Config::load(path)?.store.cold,
        None => ColdConfig::default(),
    };
    if let Some(e) = &args.s3_endpoint {
        s3.endpoint = Some(e.clone());
    }
    if let Some(r) = &args.s3_region {
        s3.region = Some(r.clone());
    }
    s3.path_style |= args.s3_path_style;
    let (url, flag) = match (&args.to_dir, &args.to_s3) {
        (Some(dir), None) => {
            let dir =
                std::path::absolute(dir).with_context(|| format!("--to-dir {}", dir.display()))?;
            // A directory destination takes no S3 settings.
            s3 = ColdConfig::default();
            (dir.to_string_lossy().into_owned(), "--to-dir")
        }
        (None, Some(url)) if url.starts_with("s3://") => (url.clone(), "--to-s3"),
        (None, Some(url)) => bail!("--to-s3 {url:?} must be s3://bucket/prefix"),
        _ => bail!("pass one of --to-dir DIR or --to-s3 s3://bucket/prefix"),
    };
    Ok(Destination::new(&url, &s3, flag)?)
}

/// Encodes the query's answer into `path`; the row count when known.
async fn write_query(
    args: &ExportArgs,
    text: &str,
    path: &Path,
    bar: &indicatif::ProgressBar,
) -> Result<Option<u64>, Failure> {
    let Some(dir) = &args.source.data_dir else {
        let server = Server::new(&args.source)?;
        let mut body = json!({ "q": text });
        if let Some(now) = &args.now {
            body["now"] = now.parse::<i64>().map_or_else(|_| json!(now), |n| json!(n));
        }
        let mut resp = server.post("/api/v1/query?format=parquet", &body).await?;
        let mut file = create(path)?;
        let mut bytes = 0u64;
        bar.set_message("bytes received");
        while let Some(chunk) = resp
            .chunk()
            .await
            .context("the server broke off the export")?
        {
            write(&mut file, path, &chunk)?;
            bytes += chunk.len() as u64;
            bar.set_position(bytes);
        }
        finish_file(file, path)?;
        return Ok(None);
    };
    let parsed = Query::parse(text).map_err(|e| Failure::Query(e.render(text)))?;
    let mut opts = PlanOptions::at(now_ns(args.now.as_deref())?);
    opts.default_row_limit = None;
    let plan = loupe_query::plan(&parsed, opts).map_err(|e| anyhow!("{}", e.message))?;
    let (store, project) = open_dir(dir, &args.source).await?;
    let stream = store
        .query_plan_stream(&project, &plan, loupe_backend::QueryLimits::default())
        .await
        .map_err(|e| anyhow!(e))?;
    let stream = stream.map(|b| b.map_err(|e| anyhow!(e)));
    encode(stream, path, bar).await.map(Some)
}

/// Encodes the raw spans of `[from, to)` into `path`.
async fn write_spans(
    args: &ExportArgs,
    from: &str,
    to: &str,
    path: &Path,
    bar: &indicatif::ProgressBar,
) -> Result<Option<u64>, Failure> {
    let from_ns = loupe_model::time::parse_instant(from).context("--from")?;
    let to_ns = loupe_model::time::parse_instant(to).context("--to")?;
    if to_ns <= from_ns {
        return Err(anyhow!("--to must be after --from").into());
    }
    let Some(dir) = &args.source.data_dir else {
        return Err(anyhow!(
            "raw spans are exported from a data directory: pass --data-dir (it is opened \
             read-only, so a server may be running on it), or export a --query from the server"
        )
        .into());
    };
    let (store, project) = open_dir(dir, &args.source).await?;
    let stream = store
        .spans_between(&project, from_ns, to_ns)
        .await
        .context("cannot read the spans")?;
    let stream = stream.map(|b| b.map_err(|e| anyhow!(e)));
    encode(stream, path, bar).await.map(Some)
}

async fn encode(
    mut stream: impl futures::Stream<Item = anyhow::Result<arrow::array::RecordBatch>> + Unpin,
    path: &Path,
    bar: &indicatif::ProgressBar,
) -> Result<u64, Failure> {
    let mut file = create(path)?;
    let mut encoder = Encoder::new(Format::Parquet);
    let mut rows = 0u64;
    bar.set_message("rows");
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        rows += batch.num_rows() as u64;
        write(&mut file, path, &encoder.push(&batch)?)?;
        bar.set_position(rows);
    }
    write(&mut file, path, &encoder.finish()?)?;
    finish_file(file, path)?;
    Ok(rows)
}

fn progress() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {pos} {msg} ({elapsed})")
    {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

fn create(path: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))
}

fn write(file: &mut std::fs::File, path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

fn finish_file(file: std::fs::File, path: &Path) -> anyhow::Result<()> {
    file.sync_all()
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The local file the answer is encoded into, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new() -> anyhow::Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Ok(Self(std::env::temp_dir().join(format!(
            "loupe-export-{}-{nanos}.parquet",
            std::process::id()
        ))))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
