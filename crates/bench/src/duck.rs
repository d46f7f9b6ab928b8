//! The DuckDB side: the same Dify rows PostgreSQL gets, written as plain
//! zstd Parquet files (one per table, the JSON columns as text, in load
//! order), answered by DuckDB with the SQL PostgreSQL gets (JSON parsed at
//! query time), so DuckDB stands for "a general engine reading the same rows
//! from plain Parquet".
//!
//! DuckDB runs in a child Python process (the `duckdb` module from PyPI,
//! installed by `scripts/peers/duckdb.sh`) speaking the line protocol of
//! `duckdb_side.py`; the time reported is DuckDB's execute + fetch, measured
//! in that process, so the pipe's cost is not counted.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use arrow::array::{ArrayRef, Float64Builder, Int32Builder, Int64Builder, StringBuilder};
use arrow::array::{RecordBatch, TimestampMicrosecondBuilder};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use chrono::NaiveDateTime;
use loupe_dify::rows::RunRows;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::compare::{Cell, Rows};

/// The helper's source, run with `python -c`.
const SCRIPT: &str = include_str!("duckdb_side.py");

/// The tables, in the order [`ParquetTables`] writes them.
pub const TABLES: [&str; 3] = [
    "workflow_runs",
    "workflow_node_executions",
    "workflow_app_logs",
];

/// A column: name and arrow type (nullable).
type Col = (&'static str, DataType);

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, None)
}

fn run_columns() -> Vec<Col> {
    use DataType::{Float64, Int32, Int64, Utf8};
    vec![
        ("id", Utf8),
        ("tenant_id", Utf8),
        ("app_id", Utf8),
        ("workflow_id", Utf8),
        ("type", Utf8),
        ("triggered_from", Utf8),
        ("version", Utf8),
        ("graph", Utf8),
        ("inputs", Utf8),
        ("status", Utf8),
        ("outputs", Utf8),
        ("error", Utf8),
        ("elapsed_time", Float64),
        ("total_tokens", Int64),
        ("total_steps", Int32),
        ("created_by_role", Utf8),
        ("created_by", Utf8),
        ("created_at", ts()),
        ("finished_at", ts()),
        ("exceptions_count", Int32),
    ]
}

fn node_columns() -> Vec<Col> {
    use DataType::{Float64, Int32, Utf8};
    vec![
        ("id", Utf8),
        ("tenant_id", Utf8),
        ("app_id", Utf8),
        ("workflow_id", Utf8),
        ("triggered_from", Utf8),
        ("workflow_run_id", Utf8),
        ("index", Int32),
        ("predecessor_node_id", Utf8),
        ("node_execution_id", Utf8),
        ("node_id", Utf8),
        ("node_type", Utf8),
        ("title", Utf8),
        ("inputs", Utf8),
        ("process_data", Utf8),
        ("outputs", Utf8),
        ("status", Utf8),
        ("error", Utf8),
        ("elapsed_time", Float64),
        ("execution_metadata", Utf8),
        ("created_at", ts()),
        ("created_by_role", Utf8),
        ("created_by", Utf8),
        ("finished_at", ts()),
    ]
}

fn log_columns() -> Vec<Col> {
    use DataType::Utf8;
    vec![
        ("id", Utf8),
        ("tenant_id", Utf8),
        ("app_id", Utf8),
        ("workflow_id", Utf8),
        ("workflow_run_id", Utf8),
        ("created_from", Utf8),
        ("created_by_role", Utf8),
        ("created_by", Utf8),
        ("created_at", ts()),
    ]
}

/// One value of a row, typed by its column.
enum V<'a> {
    S(Option<&'a str>),
    F(f64),
    I(Option<i64>),
    T(Option<NaiveDateTime>),
}

/// Column builders of one table.
enum Builder {
    S(StringBuilder),
    F(Float64Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    T(TimestampMicrosecondBuilder),
}

impl Builder {
    fn new(t: &DataType) -> Self {
        match t {
            DataType::Float64 => Self::F(Float64Builder::new()),
            DataType::Int32 => Self::I32(Int32Builder::new()),
            DataType::Int64 => Self::I64(Int64Builder::new()),
            DataType::Timestamp(..) => Self::T(TimestampMicrosecondBuilder::new()),
            _ => Self::S(StringBuilder::new()),
        }
    }

    fn push(&mut self, v: &V<'_>) -> anyhow::Result<()> {
        match (self, v) {
            (Self::S(b), V::S(s)) => b.append_option(*s),
            (Self::F(b), V::F(f)) => b.append_value(*f),
            (Self::I32(b), V::I(i)) => b.append_option(i.map(i32::try_from).transpose()?),
            (Self::I64(b), V::I(i)) => b.append_option(*i),
            // µs, truncated: what PostgreSQL's `timestamp` keeps.
            (Self::T(b), V::T(t)) => b.append_option(t.map(|t| t.and_utc().timestamp_micros())),
            _ => bail!("a value does not match its column's type"),
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Self::S(b) => Arc::new(b.finish()),
            Self::F(b) => Arc::new(b.finish()),
            Self::I32(b) => Arc::new(b.finish()),
            Self::I64(b) => Arc::new(b.finish()),
            Self::T(b) => Arc::new(b.finish()),
        }
    }
}

/// One table's Parquet file being written.
struct Table {
    path: PathBuf,
    schema: Arc<Schema>,
    builders: Vec<Builder>,
    rows: usize,
    writer: ArrowWriter<std::fs::File>,
}

impl Table {
    fn create(dir: &Path, name: &str, columns: &[Col]) -> anyhow::Result<Self> {
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect::<Vec<_>>(),
        ));
        let path = dir.join(format!("{name}.parquet"));
        let file = std::fs::File::create(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        // "Plain": zstd at its default level, the writer's other defaults.
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build();
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props))?;
        Ok(Self {
            path,
            builders: columns.iter().map(|(_, t)| Builder::new(t)).collect(),
            schema,
            rows: 0,
            writer,
        })
    }

    fn push(&mut self, row: &[V<'_>]) -> anyhow::Result<()> {
        for (b, v) in self.builders.iter_mut().zip(row) {
            b.push(v)?;
        }
        self.rows += 1;
        Ok(())
    }

    /// Writes the rows gathered so far as one batch.
    fn flush(&mut self) -> anyhow::Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let columns: Vec<ArrayRef> = self.builders.iter_mut().map(Builder::finish).collect();
        self.writer
            .write(&RecordBatch::try_new(self.schema.clone(), columns)?)?;
        self.rows = 0;
        Ok(())
    }
}

/// The three Parquet files of Dify's tables, filled run by run.
pub struct ParquetTables {
    tables: Vec<Table>,
}

impl ParquetTables {
    /// Creates the files in `dir`.
    pub fn create(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Self {
            tables: vec![
                Table::create(dir, TABLES[0], &run_columns())?,
                Table::create(dir, TABLES[1], &node_columns())?,
                Table::create(dir, TABLES[2], &log_columns())?,
            ],
        })
    }

    /// Appends one run's rows (the values the COPY text of
    /// [`crate::copy::Buffers`] holds, typed).
    pub fn push(&mut self, r: &RunRows) -> anyhow::Result<()> {
        let run = &r.run;
        fn s(v: &str) -> V<'_> {
            V::S(Some(v))
        }
        fn o(v: &Option<String>) -> V<'_> {
            V::S(v.as_deref())
        }
        let [runs, nodes, logs] = self.tables.as_mut_slice() else {
            bail!("three tables expected");
        };
        runs.push(&[
            s(&run.id),
            s(&run.tenant_id),
            s(&run.app_id),
            s(&run.workflow_id),
            s(&run.run_type),
            s(&run.triggered_from),
            s(&run.version),
            V::S(None),
            o(&run.inputs),
            s(&run.status),
            o(&run.outputs),
            o(&run.error),
            V::F(run.elapsed_time),
            V::I(Some(run.total_tokens)),
            V::I(run.total_steps.map(i64::from)),
            s(&run.created_by_role),
            s(&run.created_by),
            V::T(Some(run.created_at)),
            V::T(run.finished_at),
            V::I(run.exceptions_count.map(i64::from)),
        ])?;
        for n in &r.nodes {
            nodes.push(&[
                s(&n.id),
                s(&n.tenant_id),
                s(&n.app_id),
                s(&n.workflow_id),
                s(&n.triggered_from),
                o(&n.workflow_run_id),
                V::I(Some(i64::from(n.index))),
                o(&n.predecessor_node_id),
                s(&n.id),
                s(&n.node_id),
                s(&n.node_type),
                s(&n.title),
                o(&n.inputs),
                o(&n.process_data),
                o(&n.outputs),
                s(&n.status),
                o(&n.error),
                V::F(n.elapsed_time),
                o(&n.execution_metadata),
                V::T(Some(n.created_at)),
                s(&n.created_by_role),
                s(&run.created_by),
                V::T(n.finished_at),
            ])?;
        }
        if let Some(log) = &r.log {
            logs.push(&[
                s(&log.id),
                s(&run.tenant_id),
                s(&run.app_id),
                s(&run.workflow_id),
                s(&log.workflow_run_id),
                s(&log.created_from),
                s(&log.created_by_role),
                s(&log.created_by),
                V::T(Some(run.created_at)),
            ])?;
        }
        Ok(())
    }

    /// Writes the gathered rows (call per batch of runs: bounded memory).
    pub fn flush(&mut self) -> anyhow::Result<()> {
        self.tables.iter_mut().try_for_each(Table::flush)
    }

    /// Closes the files; returns (table, path, bytes).
    pub fn finish(self) -> anyhow::Result<Vec<(&'static str, PathBuf, u64)>> {
        let mut out = Vec::new();
        for (mut t, name) in self.tables.into_iter().zip(TABLES) {
            t.flush()?;
            t.writer.close()?;
            let bytes = std::fs::metadata(&t.path)?.len();
            out.push((name, t.path, bytes));
        }
        Ok(out)
    }
}

/// The three Parquet files a previous run left in `dir` (`--keep`), for
/// `--reuse`: (table, path, bytes).
pub fn kept_tables(dir: &Path) -> anyhow::Result<Vec<(&'static str, PathBuf, u64)>> {
    TABLES
        .iter()
        .map(|name| {
            let path = dir.join(format!("{name}.parquet"));
            let bytes = std::fs::metadata(&path)
                .with_context(|| {
                    format!(
                        "--reuse: no {} (a run with --keep leaves it; or pass --no-duckdb)",
                        path.display()
                    )
                })?
                .len();
            Ok((*name, path, bytes))
        })
        .collect()
}

/// A running DuckDB helper.
pub struct Duck {
    child: Child,
    stdin: ChildStdin,
    stdout: tokio::io::Lines<BufReader<ChildStdout>>,
    tables: Vec<(&'static str, PathBuf)>,
    /// `duckdb.__version__`.
    pub version: String,
}

impl Duck {
    /// Starts `python` with the helper and opens the tables.
    pub async fn start(
        python: &Path,
        tables: Vec<(&'static str, PathBuf)>,
    ) -> anyhow::Result<Duck> {
        let mut child = Command::new(python)
            .arg("-c")
            .arg(SCRIPT)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", python.display()))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            bail!("the DuckDB helper has no pipes");
        };
        let mut duck = Duck {
            child,
            stdin,
            stdout: BufReader::new(stdout).lines(),
            tables,
            version: String::new(),
        };
        let reply = match duck.open().await {
            Ok(r) => r,
            Err(e) => {
                // Python without the module exits at once: say how to get it.
                let mut err = String::new();
                if let Some(mut s) = duck.child.stderr.take() {
                    use tokio::io::AsyncReadExt as _;
                    let _ =
                        tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut err))
                            .await;
                }
                bail!(
                    "DuckDB does not start with {}: {e:#}\n{}\ninstall it with \
                     `bash scripts/peers/duckdb.sh` and pass --duckdb-python (or \
                     LOUPE_BENCH_DUCKDB_PYTHON) the python it prints",
                    python.display(),
                    err.trim()
                );
            }
        };
        duck.version = reply
            .get("version")
            .and_then(|v| v.as_str())
            .unwrap_or("unknown")
            .to_owned();
        Ok(duck)
    }

    async fn call(&mut self, request: serde_json::Value) -> anyhow::Result<serde_json::Value> {
        let mut line = request.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await?;
        self.stdin.flush().await?;
        let reply = self
            .stdout
            .next_line()
            .await?
            .ok_or_else(|| anyhow!("the DuckDB helper exited"))?;
        let reply: serde_json::Value =
            serde_json::from_str(&reply).context("the DuckDB helper's answer is not JSON")?;
        if let Some(e) = reply.get("error") {
            bail!("DuckDB: {}", e.as_str().unwrap_or_default());
        }
        Ok(reply)
    }

    /// (Re)opens a fresh database over the files: DuckDB's caches are gone.
    pub async fn open(&mut self) -> anyhow::Result<serde_json::Value> {
        let tables: serde_json::Map<String, serde_json::Value> = self
            .tables
            .iter()
            .map(|(t, p)| ((*t).to_owned(), p.display().to_string().into()))
            .collect();
        self.call(serde_json::json!({ "op": "open", "tables": tables, "threads": 2 }))
            .await
    }

    /// Runs one statement; its rows (columns `keep`, all when empty) and
    /// DuckDB's time.
    pub async fn run(&mut self, sql: &str, keep: &[&str]) -> anyhow::Result<(Rows, Duration)> {
        let reply = self
            .call(serde_json::json!({ "op": "query", "sql": sql }))
            .await
            .with_context(|| format!("DuckDB failed: {sql}"))?;
        let secs = reply.get("secs").and_then(|s| s.as_f64()).unwrap_or(0.0);
        let names: Vec<&str> = reply
            .get("columns")
            .and_then(|c| c.as_array())
            .map(|c| c.iter().map(|n| n.as_str().unwrap_or_default()).collect())
            .unwrap_or_default();
        let idx = crate::compare::column_positions(&names, keep);
        let mut rows = Rows::new();
        for row in reply
            .get("rows")
            .and_then(|r| r.as_array())
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let row = row.as_array().map(Vec::as_slice).unwrap_or_default();
            rows.push(
                idx.iter()
                    .map(|&i| row.get(i).map_or(Cell::Null, Cell::from_json))
                    .collect(),
            );
        }
        Ok((rows, Duration::from_secs_f64(secs.max(0.0))))
    }
}
