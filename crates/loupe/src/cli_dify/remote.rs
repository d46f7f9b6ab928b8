//! A [`SpanReader`] over a running `loupe serve`'s HTTP API, so `loupe dify
//! cleanup` can verify what Loupe holds while the server owns the data
//! directory (its lock keeps a second process from opening the store).
//!
//! Only `trace` is served, which is all the cleanup's verification reads
//! (`GET /api/v1/traces/{id}`); the other reads answer `Unsupported`.

use futures::FutureExt;
use futures::future::BoxFuture;
use loupe_backend::{
    BatchStream, OffsetPage, PageQuery, Plan, QueryLimits, QueryResult, SpanPage, SpanQuery,
    SpanReader, StoreError,
};
use loupe_model::{ProjectId, Span};

/// The server at `base` (e.g. `http://127.0.0.1:4318`), with the secret key
/// of the project to read, if the server requires keys.
pub struct RemoteReader {
    base: String,
    secret_key: Option<String>,
    client: reqwest::Client,
}

impl RemoteReader {
    /// A reader of the server at `base`.
    pub fn new(base: String, secret_key: Option<String>) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            secret_key,
            client: reqwest::Client::new(),
        }
    }

    async fn fetch_trace(&self, project: &ProjectId, id: &str) -> Result<Vec<Span>, StoreError> {
        let url = format!("{}/api/v1/traces/{id}", self.base);
        let mut request = self
            .client
            .get(&url)
            .header("x-loupe-project", project.as_str());
        if let Some(key) = &self.secret_key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(|e| {
            StoreError::Internal(format!("cannot reach the Loupe server at {url}: {e}"))
        })?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(StoreError::Invalid(format!(
                "the Loupe server at {} refused the key: pass the project's secret key with \
                 --secret-key (or LOUPE_SECRET_KEY)",
                self.base
            )));
        }
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(StoreError::Internal(format!(
                "the Loupe server answered {status} for {url}: {text}"
            )));
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            spans: Vec<Span>,
        }
        let answer: Answer = response.json().await.map_err(|e| {
            StoreError::Internal(format!("unexpected answer from the Loupe server: {e}"))
        })?;
        Ok(answer.spans)
    }
}

fn unsupported<T: Send + 'static>(what: &str) -> BoxFuture<'static, Result<T, StoreError>> {
    let message = format!("{what} through a remote server");
    async move { Err(StoreError::Unsupported(message)) }.boxed()
}

impl SpanReader for RemoteReader {
    fn trace<'a>(
        &'a self,
        project: &'a ProjectId,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Span>, StoreError>> {
        self.fetch_trace(project, id).boxed()
    }

    fn list(&self, _query: SpanQuery) -> BoxFuture<'_, Result<SpanPage, StoreError>> {
        unsupported("span lists")
    }

    fn page(&self, _query: PageQuery) -> BoxFuture<'_, Result<OffsetPage, StoreError>> {
        unsupported("span pages")
    }

    fn query<'a>(
        &'a self,
        _project: &'a ProjectId,
        _plan: &'a Plan,
        _limits: QueryLimits,
    ) -> BoxFuture<'a, Result<QueryResult, StoreError>> {
        unsupported("queries")
    }

    fn query_stream<'a>(
        &'a self,
        _project: &'a ProjectId,
        _plan: &'a Plan,
        _limits: QueryLimits,
    ) -> BoxFuture<'a, Result<BatchStream, StoreError>> {
        unsupported("query streams")
    }
}
