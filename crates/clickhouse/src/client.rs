//! The HTTP exchange with ClickHouse (its port 8123 interface): a statement
//! in the body, settings as URL parameters (18.16 refuses `SETTINGS` on an
//! INSERT), rows in and out as JSON. Every answer is read with a size bound.

use std::time::Instant;

use serde_json::Value;

use crate::Error;
use crate::config::Resolved;
use crate::error::code_of;

/// Integers as JSON numbers, not strings, in JSON answers.
const JSON_SETTINGS: &[(&str, &str)] = &[("output_format_json_quote_64bit_integers", "0")];

/// Error texts are cut to this many bytes before they reach a log or a reply.
const MAX_ERROR_TEXT: usize = 2048;

/// A ClickHouse HTTP client for one database.
#[derive(Clone)]
pub(crate) struct Client {
    http: reqwest::Client,
    url: reqwest::Url,
    database: String,
    user: String,
    password: String,
    max_response_bytes: usize,
    /// Replicas an insert must reach before it is acknowledged (0, 1: one).
    insert_quorum: u32,
    /// Time limit of a whole answer, or of each piece of a streamed one.
    timeout: std::time::Duration,
    /// Settings sent with every statement (URL parameters).
    settings: Vec<(&'static str, &'static str)>,
}

/// The answer of a `FORMAT JSONCompact` query: its rows, cell by cell.
#[derive(Debug, Default)]
pub(crate) struct Rows {
    pub rows: Vec<Vec<Value>>,
}

impl Client {
    pub fn new(config: &Resolved) -> Result<Self, Error> {
        // A whole answer's time limit would cut streamed reads (a scan, the
        // hour tier's rebuild) that outlast it while the server keeps
        // sending: those wait at most `timeout` for each piece, and every
        // other request is limited whole (`request`).
        let http = reqwest::Client::builder()
            .read_timeout(config.timeout)
            .connect_timeout(config.timeout.min(std::time::Duration::from_secs(10)))
            .build()
            .map_err(|e| Error::Config(format!("store.clickhouse: cannot build a client: {e}")))?;
        Ok(Self {
            http,
            url: config.url.clone(),
            database: config.database.clone(),
            user: config.user.clone(),
            password: config.password.clone(),
            max_response_bytes: config.max_response_bytes,
            insert_quorum: config.insert_quorum,
            timeout: config.timeout,
            settings: Vec::new(),
        })
    }

    /// Sends `settings` with every later statement.
    pub fn with_settings(mut self, settings: &[(&'static str, &'static str)]) -> Self {
        self.settings.extend_from_slice(settings);
        self
    }

    /// The database the statements run in.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Runs a statement with the body as the query text (DDL, or a SELECT
    /// with its own FORMAT) and returns the answer's text.
    pub async fn execute(&self, sql: &str, in_database: bool) -> Result<String, Error> {
        let url = self.statement_url(in_database, JSON_SETTINGS);
        self.send(url, sql.as_bytes().to_vec(), "statement").await
    }

    /// The URL of a statement: in the database or not, Loupe's own limits,
    /// the answer's format settings, then the client's settings.
    fn statement_url(&self, in_database: bool, format: &[(&str, &str)]) -> reqwest::Url {
        let mut url = self.url.clone();
        {
            let mut q = url.query_pairs_mut();
            if in_database {
                q.append_pair("database", &self.database);
            }
            // Plans with long `in (…)` lists and id lookups stay well under
            // this; the default (256 KiB) is tighter than Loupe's own bounds.
            q.append_pair("max_query_size", "4194304");
            for (k, v) in format.iter().chain(&self.settings) {
                q.append_pair(k, v);
            }
        }
        url
    }

    /// Sends a SELECT and returns its response once its status says the
    /// answer follows.
    async fn open_select(
        &self,
        url: reqwest::Url,
        body: String,
    ) -> Result<reqwest::Response, Error> {
        let resp = self.request(url, body.into_bytes(), false).await?;
        if !resp.status().is_success() {
            let status = resp.status();
            let text = self.read_all(resp).await?;
            return Err(server_error(status, &text));
        }
        Ok(resp)
    }

    /// Runs a SELECT and returns its rows (`FORMAT JSONCompact` is appended).
    #[tracing::instrument(name = "clickhouse.select", skip_all, fields(bytes = sql.len()))]
    pub async fn select(&self, sql: &str) -> Result<Rows, Error> {
        let text = self
            .execute(&format!("{sql}\nFORMAT JSONCompact"), true)
            .await?;
        let mut doc: Value =
            serde_json::from_str(&text).map_err(|e| Error::Decode(format!("not JSON: {e}")))?;
        let data = doc
            .get_mut("data")
            .map(Value::take)
            .ok_or_else(|| Error::Decode("no `data` in the answer".into()))?;
        let Value::Array(rows) = data else {
            return Err(Error::Decode("`data` is not an array".into()));
        };
        let rows = rows
            .into_iter()
            .map(|r| match r {
                Value::Array(cells) => Ok(cells),
                _ => Err(Error::Decode("a row is not an array".into())),
            })
            .collect::<Result<_, _>>()?;
        Ok(Rows { rows })
    }

    /// Inserts JSON lines (`FORMAT JSONEachRow`) into `table`.
    #[tracing::instrument(name = "clickhouse.insert", skip_all, fields(table, bytes = body.len()))]
    pub async fn insert(&self, table: &str, body: Vec<u8>, sync: bool) -> Result<(), Error> {
        let mut url = self.url.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("database", &self.database);
            q.append_pair("query", &format!("INSERT INTO {table} FORMAT JSONEachRow"));
            if sync {
                // Through a Distributed table: return only once every shard
                // holds its rows, so an acknowledged write is stored.
                q.append_pair("insert_distributed_sync", "1");
            }
            if self.insert_quorum > 1 {
                // Replicated: return only once that many replicas hold it.
                q.append_pair("insert_quorum", &self.insert_quorum.to_string());
            }
        }
        self.send(url, body, "insert").await.map(drop)
    }

    /// Runs a SELECT whose answer is read as it arrives, one
    /// `JSONEachRow` object per row (the format every profile has), each
    /// row bounded by `max_response_bytes` and the whole answer by nothing:
    /// the reader's pace holds the server back.
    #[tracing::instrument(name = "clickhouse.select_rows", skip_all, fields(bytes = sql.len()))]
    pub async fn select_rows(&self, sql: &str) -> Result<RowStream, Error> {
        let url = self.statement_url(true, JSON_SETTINGS);
        let resp = self
            .open_select(url, format!("{sql}\nFORMAT JSONEachRow"))
            .await?;
        Ok(RowStream {
            resp,
            buf: Vec::new(),
            max_row_bytes: self.max_response_bytes,
            done: false,
        })
    }

    /// Runs a SELECT whose answer arrives as Arrow IPC (`FORMAT
    /// ArrowStream`, ClickHouse 20.x and later), decoded batch by batch as
    /// it arrives: no text to parse, each batch (a block of about
    /// `block_rows` rows) bounded by `max_response_bytes`.
    #[tracing::instrument(name = "clickhouse.select_arrow", skip_all, fields(bytes = sql.len()))]
    pub async fn select_arrow(&self, sql: &str, block_rows: usize) -> Result<ArrowBatches, Error> {
        let block = block_rows.clamp(1, 65_536).to_string();
        let url = self.statement_url(
            true,
            &[
                // Text as Utf8 (not Binary), LowCardinality as plain columns.
                ("output_format_arrow_string_as_string", "1"),
                ("output_format_arrow_low_cardinality_as_dictionary", "0"),
                ("max_block_size", &block),
            ],
        );
        let resp = self
            .open_select(url, format!("{sql}\nFORMAT ArrowStream"))
            .await?;
        Ok(ArrowBatches {
            resp,
            decoder: arrow::ipc::reader::StreamDecoder::new(),
            pending: arrow::buffer::Buffer::from(Vec::<u8>::new()),
            fed: 0,
            max_batch_bytes: self.max_response_bytes,
            done: false,
        })
    }

    /// Sends a statement; `whole`: its answer must arrive within the
    /// timeout (streamed answers only wait that long for each piece).
    async fn request(
        &self,
        url: reqwest::Url,
        body: Vec<u8>,
        whole: bool,
    ) -> Result<reqwest::Response, Error> {
        let mut req = self.http.post(url).body(body);
        if whole {
            req = req.timeout(self.timeout);
        }
        if !self.user.is_empty() {
            req = req.basic_auth(&self.user, Some(&self.password));
        }
        req.send()
            .await
            .map_err(|e| Error::Unreachable(without_url(&e)))
    }

    /// The whole body, at most `max_response_bytes` of it.
    async fn read_all(&self, mut resp: reqwest::Response) -> Result<String, Error> {
        let mut buf = Vec::new();
        while let Some(chunk) = next_chunk(&mut resp).await? {
            if buf.len() + chunk.len() > self.max_response_bytes {
                return Err(Error::TooLarge {
                    limit: self.max_response_bytes,
                });
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    async fn send(&self, url: reqwest::Url, body: Vec<u8>, what: &str) -> Result<String, Error> {
        let started = Instant::now();
        let resp = self.request(url, body, true).await?;
        let status = resp.status();
        let text = self.read_all(resp).await?;
        tracing::debug!(
            what,
            status = status.as_u16(),
            bytes = text.len(),
            ms = started.elapsed().as_millis() as u64,
            "clickhouse answered"
        );
        if !status.is_success() {
            return Err(server_error(status, &text));
        }
        // A failure after the answer started streaming ends the body with
        // an exception text while the status stays 200.
        if let Some(pos) = text.rfind("Code: ")
            && text.len() - pos < MAX_ERROR_TEXT
            && text[pos..].contains("Exception")
            && !text.trim_end().ends_with('}')
        {
            return Err(Error::Server {
                status: status.as_u16(),
                code: code_of(&text[pos..]),
                message: text[pos..].trim().to_owned(),
            });
        }
        Ok(text)
    }
}

/// A failed statement's error, its text cut to [`MAX_ERROR_TEXT`].
fn server_error(status: reqwest::StatusCode, text: &str) -> Error {
    let mut message = text.trim().to_owned();
    if message.len() > MAX_ERROR_TEXT {
        let mut cut = MAX_ERROR_TEXT;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
    }
    Error::Server {
        status: status.as_u16(),
        code: code_of(&message),
        message,
    }
}

/// The rows of a [`Client::select_rows`] answer, read as they arrive.
pub(crate) struct RowStream {
    resp: reqwest::Response,
    /// Bytes received and not yet returned as rows.
    buf: Vec<u8>,
    max_row_bytes: usize,
    done: bool,
}

impl RowStream {
    /// The next row; `None` at the end of the answer. A failure after the
    /// answer started (ClickHouse then writes its exception text into the
    /// body, status 200) is an error, never a short answer.
    pub async fn next(&mut self) -> Result<Option<serde_json::Map<String, Value>>, Error> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let line = String::from_utf8_lossy(&line[..pos]);
                if line.trim().is_empty() {
                    continue;
                }
                return parse_row(&line).map(Some);
            }
            if self.done {
                if self.buf.iter().all(u8::is_ascii_whitespace) {
                    return Ok(None);
                }
                let rest = std::mem::take(&mut self.buf);
                return parse_row(&String::from_utf8_lossy(&rest)).map(Some);
            }
            match next_chunk(&mut self.resp).await? {
                Some(chunk) => {
                    // Complete lines were returned before this read, so
                    // what follows the chunk's last newline is one row.
                    let partial = match chunk.iter().rposition(|b| *b == b'\n') {
                        Some(nl) => chunk.len() - nl - 1,
                        None => self.buf.len() + chunk.len(),
                    };
                    if partial > self.max_row_bytes {
                        return Err(Error::TooLarge {
                            limit: self.max_row_bytes,
                        });
                    }
                    self.buf.extend_from_slice(&chunk);
                }
                None => self.done = true,
            }
        }
    }
}

/// The batches of a [`Client::select_arrow`] answer, decoded as they
/// arrive.
pub(crate) struct ArrowBatches {
    resp: reqwest::Response,
    decoder: arrow::ipc::reader::StreamDecoder,
    /// Received bytes not yet given to the decoder.
    pending: arrow::buffer::Buffer,
    /// Bytes given to the decoder since its last batch.
    fed: usize,
    max_batch_bytes: usize,
    done: bool,
}

impl ArrowBatches {
    /// The next batch; `None` at the end of the answer. A failure after
    /// the answer started (ClickHouse writes its exception text into the
    /// body) or a cut stream is an error, never a short answer.
    pub async fn next(&mut self) -> Result<Option<arrow::array::RecordBatch>, Error> {
        loop {
            while !self.pending.is_empty() {
                let before = self.pending.len();
                match self.decoder.decode(&mut self.pending) {
                    Ok(Some(batch)) => {
                        self.fed = 0;
                        return Ok(Some(batch));
                    }
                    Ok(None) => {}
                    Err(e) => return Err(self.broken(&e.to_string())),
                }
                if self.pending.len() == before {
                    break;
                }
            }
            if self.done {
                self.decoder
                    .finish()
                    .map_err(|e| Error::Decode(format!("arrow stream: {e}")))?;
                return Ok(None);
            }
            match next_chunk(&mut self.resp).await? {
                Some(chunk) => {
                    self.fed += chunk.len();
                    if self.fed > self.max_batch_bytes {
                        return Err(Error::TooLarge {
                            limit: self.max_batch_bytes,
                        });
                    }
                    self.pending = arrow::buffer::Buffer::from(chunk.to_vec());
                }
                None => self.done = true,
            }
        }
    }

    /// The error of a stream that stopped decoding: ClickHouse's exception
    /// when the bytes hold one.
    fn broken(&self, decoding: &str) -> Error {
        let text = String::from_utf8_lossy(self.pending.as_slice());
        match text.find("Code: ") {
            Some(pos) => server_error(reqwest::StatusCode::OK, &text[pos..]),
            None => Error::Decode(format!("arrow stream: {decoding}")),
        }
    }
}

/// One `JSONEachRow` line, or the exception ClickHouse wrote instead.
fn parse_row(line: &str) -> Result<serde_json::Map<String, Value>, Error> {
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(row)) => Ok(row),
        _ if line.contains("Exception") => Err(server_error(reqwest::StatusCode::OK, line)),
        Ok(_) => Err(Error::Decode("a row is not an object".into())),
        Err(e) => Err(Error::Decode(format!("a row is not JSON: {e}"))),
    }
}

/// The next piece of an answer's body; a broken connection is the
/// server's side (unreachable), never a short answer.
async fn next_chunk(resp: &mut reqwest::Response) -> Result<Option<bytes::Bytes>, Error> {
    resp.chunk()
        .await
        .map_err(|e| Error::Unreachable(without_url(&e)))
}

/// A reqwest error's text without its URL (which may carry settings).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "<clickhouse>");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
