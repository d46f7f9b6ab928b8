//! A small bounded feed of recent finished spans (key, time, failed), for
//! event rules ("N consecutive failures of the same tool within T") that
//! per-minute sums cannot express.
//!
//! [`crate::Rollups::apply_change`] records a span here the first time it
//! is seen finished. Each event has a sequence number, so a reader keeps a
//! cursor and reads only what is new ([`RecentEvents::since`]). The feed
//! is in memory only: after a restart it holds what WAL replay re-applied.

use std::collections::VecDeque;

use crate::{Contribution, RollupKey};

/// Events kept at most; older ones are dropped first.
pub const RECENT_EVENTS_KEPT: usize = 16_384;

/// One finished span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanEvent {
    /// Position in the feed (1, 2, …; starts again at 1 in a new process).
    pub seq: u64,
    /// End (else start) time, ns since the epoch, if known.
    pub at_ns: Option<i64>,
    /// The span's series.
    pub key: RollupKey,
    /// Whether the span failed.
    pub error: bool,
}

/// The bounded feed.
#[derive(Debug, Clone, Default)]
pub struct RecentEvents {
    last_seq: u64,
    items: VecDeque<SpanEvent>,
}

impl RecentEvents {
    /// Records `new` if it is the first finished version of its span.
    pub(crate) fn note(&mut self, old: Option<&Contribution>, new: &Contribution) {
        if !new.finished || old.is_some_and(|o| o.finished) {
            return;
        }
        self.last_seq += 1;
        self.items.push_back(SpanEvent {
            seq: self.last_seq,
            at_ns: new.at_ns,
            key: new.key.clone(),
            error: new.error,
        });
        while self.items.len() > RECENT_EVENTS_KEPT {
            self.items.pop_front();
        }
    }

    /// Sequence number of the newest event (0: none yet).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Events with a sequence number above `cursor`, oldest first.
    pub fn since(&self, cursor: u64) -> impl Iterator<Item = &SpanEvent> {
        self.items.iter().filter(move |e| e.seq > cursor)
    }
}
