//! The ingest pipeline shared by every push source: business tags, then a
//! durable append to the store. Sources call [`Pipeline::write`] with
//! normalised spans; the returned ack means the spans are in the WAL.

use std::sync::Arc;

use loupe_backend::{SpanStore, StoreError, WriteAck};
use loupe_model::Span;
use loupe_normalise::tags::TagRules;

/// Normalised spans → tags → storage.
#[derive(Clone)]
pub struct Pipeline {
    store: Arc<dyn SpanStore>,
    tags: Arc<TagRules>,
}

impl Pipeline {
    /// A pipeline writing to `store` with the given tag rules.
    pub fn new(store: Arc<dyn SpanStore>, tags: TagRules) -> Self {
        Self {
            store,
            tags: Arc::new(tags),
        }
    }

    /// Applies tag rules and appends. Empty input is acknowledged at once.
    pub async fn write(&self, mut spans: Vec<Span>) -> Result<WriteAck, StoreError> {
        if spans.is_empty() {
            return Ok(WriteAck { seq: 0, spans: 0 });
        }
        for span in &mut spans {
            self.tags.apply(span);
        }
        self.store.append(spans).await
    }

    /// The store behind the pipeline (for reads).
    pub fn store(&self) -> &Arc<dyn SpanStore> {
        &self.store
    }
}
