//! The HTTP exchange with ClickHouse (its port 8123 interface): a statement
//! in the body, settings as URL parameters (18.16 refuses `SETTINGS` on an
//! INSERT), rows in and out as JSON. Every answer is read with a size bound.

use std::time::Instant;

use serde_json::Value;

use crate::Error;
use crate::config::Resolved;
use crate::error::code_of;

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
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
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
        let mut url = self.url.clone();
        {
            let mut q = url.query_pairs_mut();
            if in_database {
                q.append_pair("database", &self.database);
            }
            q.append_pair("output_format_json_quote_64bit_integers", "0");
            // Plans with long `in (…)` lists and id lookups stay well under
            // this; the default (256 KiB) is tighter than Loupe's own bounds.
            q.append_pair("max_query_size", "4194304");
            for (k, v) in &self.settings {
                q.append_pair(k, v);
            }
        }
        self.send(url, sql.as_bytes().to_vec(), "statement").await
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

    async fn send(&self, url: reqwest::Url, body: Vec<u8>, what: &str) -> Result<String, Error> {
        let started = Instant::now();
        let mut req = self.http.post(url).body(body);
        if !self.user.is_empty() {
            req = req.basic_auth(&self.user, Some(&self.password));
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| Error::Unreachable(without_url(&e)))?;
        let status = resp.status();
        let mut buf = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| Error::Unreachable(without_url(&e)))?
        {
            if buf.len() + chunk.len() > self.max_response_bytes {
                return Err(Error::TooLarge {
                    limit: self.max_response_bytes,
                });
            }
            buf.extend_from_slice(&chunk);
        }
        let text = String::from_utf8_lossy(&buf).into_owned();
        tracing::debug!(
            what,
            status = status.as_u16(),
            bytes = buf.len(),
            ms = started.elapsed().as_millis() as u64,
            "clickhouse answered"
        );
        if !status.is_success() {
            let mut message = text.trim().to_owned();
            if message.len() > MAX_ERROR_TEXT {
                let mut cut = MAX_ERROR_TEXT;
                while !message.is_char_boundary(cut) {
                    cut -= 1;
                }
                message.truncate(cut);
            }
            return Err(Error::Server {
                status: status.as_u16(),
                code: code_of(&message),
                message,
            });
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
