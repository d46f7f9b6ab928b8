//! Admission for ingest requests, taken before a body is decoded: decoding
//! and normalising cost more CPU than storing, so under overload requests
//! that will be refused must be refused before that work, or the refused
//! ones starve the admitted ones (measured: 1 % of a 2× overload accepted
//! when the store alone bounded its appends).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a refused client should wait before retrying.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// At most `slots` ingest requests decode and append at once; a request
/// waits for a slot at most `wait`, then is refused (503 + Retry-After).
#[derive(Debug, Clone)]
pub struct IngestGate {
    slots: Option<Arc<Semaphore>>,
    wait: Duration,
    /// Requests refused so far (`loupe_ingest_refused_total`).
    refused: Arc<AtomicU64>,
}

/// An ingest request that may not run now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// When to retry.
    pub retry_after: Duration,
}

impl IngestGate {
    /// A gate of `slots` concurrent requests (at least 1).
    pub fn new(slots: usize, wait: Duration) -> Self {
        Self {
            slots: Some(Arc::new(Semaphore::new(slots.max(1)))),
            wait,
            refused: Arc::default(),
        }
    }

    /// No limit (tests and embedders that bound load themselves).
    pub fn unlimited() -> Self {
        Self {
            slots: None,
            wait: Duration::ZERO,
            refused: Arc::default(),
        }
    }

    /// Waits for a slot; the permit holds it until dropped.
    pub async fn admit(&self) -> Result<Option<OwnedSemaphorePermit>, Refused> {
        let Some(slots) = &self.slots else {
            return Ok(None);
        };
        match tokio::time::timeout(self.wait, slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Some(permit)),
            _ => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                Err(Refused {
                    retry_after: RETRY_AFTER,
                })
            }
        }
    }

    /// Ingest requests refused for overload since the start.
    pub fn refused_total(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_gate_refuses_after_the_wait_and_admits_once_a_slot_frees() {
        let gate = IngestGate::new(1, Duration::from_millis(50));
        let held = gate.admit().await.expect("first");
        assert!(held.is_some());
        assert_eq!(
            gate.admit().await.expect_err("full"),
            Refused {
                retry_after: RETRY_AFTER
            }
        );
        assert_eq!(gate.refused_total(), 1, "counted for /metrics");
        drop(held);
        assert!(gate.admit().await.expect("freed").is_some());
        assert_eq!(gate.refused_total(), 1);
        assert!(
            IngestGate::unlimited()
                .admit()
                .await
                .expect("open")
                .is_none()
        );
    }
}
