//! Exports: Arrow batches → CSV, JSON lines or Parquet bytes, chunk by
//! chunk, so a server can stream a query's answer without holding it.
//!
//! - CSV: a header of column names, RFC 4180 quoting, unset as an empty
//!   cell, maps as JSON text, timestamps and durations as integer ns.
//! - JSON lines: one object per row keyed by column name (the same values
//!   as `POST /api/v1/query`).
//! - Parquet: the batches' Arrow schema, zstd, one row group per batch.

use arrow::array::RecordBatch;
use loupe_backend::plan::batch_rows;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde_json::Value;

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values with a header.
    Csv,
    /// One JSON object per line.
    Jsonl,
    /// Apache Parquet.
    Parquet,
}

impl Format {
    /// The format named `name` (`csv`, `jsonl`/`ndjson`, `parquet`).
    pub fn from_name(name: &str) -> Option<Format> {
        match name.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" | "json-lines" => Some(Format::Jsonl),
            "parquet" => Some(Format::Parquet),
            _ => None,
        }
    }

    /// The format a file name's extension implies.
    pub fn from_path(path: &std::path::Path) -> Option<Format> {
        Format::from_name(path.extension()?.to_str()?)
    }

    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Jsonl => "application/x-ndjson",
            Format::Parquet => "application/vnd.apache.parquet",
        }
    }
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The Parquet writer failed.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
}

/// Encodes batches one at a time.
pub struct Encoder {
    format: Format,
    header_done: bool,
    parquet: Option<ArrowWriter<Vec<u8>>>,
}

impl Encoder {
    /// An encoder of `format`.
    pub fn new(format: Format) -> Self {
        Self {
            format,
            header_done: false,
            parquet: None,
        }
    }

    /// The bytes of one batch (the CSV header comes with the first).
    pub fn push(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, ExportError> {
        let names: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let mut out = Vec::new();
        match self.format {
            Format::Csv => {
                if !self.header_done {
                    let header: Vec<String> = names.iter().map(|n| csv_cell(n)).collect();
                    out.extend_from_slice(header.join(",").as_bytes());
                    out.push(b'\n');
                    self.header_done = true;
                }
                for row in batch_rows(batch) {
                    let cells: Vec<String> = row
                        .iter()
                        .map(|v| match v {
                            Value::Null => String::new(),
                            Value::String(s) => csv_cell(s),
                            other => csv_cell(&other.to_string()),
                        })
                        .collect();
                    out.extend_from_slice(cells.join(",").as_bytes());
                    out.push(b'\n');
                }
            }
            Format::Jsonl => {
                for row in batch_rows(batch) {
                    let obj: serde_json::Map<String, Value> =
                        names.iter().cloned().zip(row).collect();
                    out.extend_from_slice(Value::Object(obj).to_string().as_bytes());
                    out.push(b'\n');
                }
            }
            Format::Parquet => {
                if self.parquet.is_none() {
                    let props = WriterProperties::builder()
                        .set_compression(Compression::ZSTD(ZstdLevel::default()))
                        .build();
                    self.parquet = Some(ArrowWriter::try_new(
                        Vec::new(),
                        batch.schema(),
                        Some(props),
                    )?);
                }
                if let Some(w) = &mut self.parquet {
                    w.write(batch)?;
                    w.flush()?;
                    out = std::mem::take(w.inner_mut());
                }
            }
        }
        Ok(out)
    }

    /// The closing bytes (the Parquet footer; for an export without rows,
    /// the CSV header is unknown and nothing is written).
    pub fn finish(self) -> Result<Vec<u8>, ExportError> {
        match self.parquet {
            Some(w) => Ok(w.into_inner()?),
            None => Ok(Vec::new()),
        }
    }
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
