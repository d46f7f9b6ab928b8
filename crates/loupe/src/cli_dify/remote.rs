//! A [`SpanReader`] over a running `loupe serve`'s HTTP API, so `loupe dify
//! cleanup` can verify what Loupe holds while the server owns the data
//! directory (its lock keeps a second process from opening the store).
//!
//! Only what the cleanup's verification reads is served: `traces`, a batch
//! of runs at once (`POST /api/v1/traces`; a server without it is asked
//! run by run) and `trace` (`GET /api/v1/traces/{id}`); the other reads
//! answer `Unsupported`.

use futures::FutureExt;
use futures::future::BoxFuture;
use loupe_backend::{
    BatchStream, OffsetPage, PageQuery, Plan, QueryLimits, QueryResult, SpanPage, SpanQuery,
    SpanReader, StoreError, TracesQuery,
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

    fn request(
        &self,
        request: reqwest::RequestBuilder,
        project: &ProjectId,
    ) -> reqwest::RequestBuilder {
        let request = request.header("x-loupe-project", project.as_str());
        match &self.secret_key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    /// The answer's body, or the error its status means (`None`: the
    /// status is one the caller handles, `pass`).
    async fn answer<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        request: reqwest::RequestBuilder,
        pass: &[reqwest::StatusCode],
    ) -> Result<Option<T>, StoreError> {
        let response = request.send().await.map_err(|e| {
            StoreError::Internal(format!("cannot reach the Loupe server at {url}: {e}"))
        })?;
        let status = response.status();
        if pass.contains(&status) {
            return Ok(None);
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
        response.json().await.map(Some).map_err(|e| {
            StoreError::Internal(format!("unexpected answer from the Loupe server: {e}"))
        })
    }

    async fn fetch_trace(&self, project: &ProjectId, id: &str) -> Result<Vec<Span>, StoreError> {
        let url = format!("{}/api/v1/traces/{id}", self.base);
        let request = self.request(self.client.get(&url), project);
        let answer: Option<Spans> = self
            .answer(&url, request, &[reqwest::StatusCode::NOT_FOUND])
            .await?;
        Ok(answer.map(|a| a.spans).unwrap_or_default())
    }

    async fn fetch_traces(
        &self,
        project: &ProjectId,
        query: &TracesQuery,
    ) -> Result<Option<Vec<Span>>, StoreError> {
        let url = format!("{}/api/v1/traces", self.base);
        let request = self.request(self.client.post(&url).json(query), project);
        // A server from before the batch route answers 404 or 405, or 403
        // to a read key (it takes an unknown POST for a write): ask it run
        // by run.
        let old = [
            reqwest::StatusCode::NOT_FOUND,
            reqwest::StatusCode::METHOD_NOT_ALLOWED,
            reqwest::StatusCode::FORBIDDEN,
        ];
        match self.answer::<Batch>(&url, request, &old).await? {
            Some(b) if b.truncated => Ok(None),
            Some(b) => Ok(Some(b.spans)),
            None => loupe_backend::traces_one_by_one(self, project, query).await,
        }
    }
}

#[derive(serde::Deserialize)]
struct Spans {
    spans: Vec<Span>,
}

/// `POST /api/v1/traces`'s answer.
#[derive(serde::Deserialize)]
struct Batch {
    spans: Vec<Span>,
    #[serde(default)]
    truncated: bool,
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

    fn traces<'a>(
        &'a self,
        project: &'a ProjectId,
        query: &'a TracesQuery,
    ) -> BoxFuture<'a, Result<Option<Vec<Span>>, StoreError>> {
        self.fetch_traces(project, query).boxed()
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
