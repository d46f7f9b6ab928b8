//! Query memory: one pool for every query of the process, and a limit per
//! query inside it.
//!
//! Each DataFusion session used to get its own 512 MiB pool, so N queries
//! at once could hold N × 512 MiB, and reads outside `query_plan`/SQL
//! (sessions, users, Langfuse reads) had no pool at all (issue 14). Every
//! session now gets a [`QueryPool`]: its operators may reserve at most the
//! query's limit (`[query] memory_bytes`; over it the query is too big,
//! 413), and every reservation is also taken from the process-wide pool
//! (`[query] total_memory_bytes`; when that is spent the query is refused
//! as busy, 503 + Retry-After, and a retry may succeed).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::common::{Result, resources_datafusion_err};
use datafusion::execution::memory_pool::{
    GreedyMemoryPool, MemoryLimit, MemoryPool, MemoryReservation,
};

/// Marks the error of a spent process-wide pool (mapped to "busy").
pub(crate) const BUSY_MARK: &str = "[query] total_memory_bytes";

/// The pool every query of the process reserves from.
pub(crate) fn global(total_bytes: usize) -> Arc<dyn MemoryPool> {
    Arc::new(GreedyMemoryPool::new(total_bytes.max(1 << 20)))
}

/// One query's pool: its own limit, inside the process-wide pool.
#[derive(Debug)]
pub(crate) struct QueryPool {
    global: Option<Arc<dyn MemoryPool>>,
    limit: usize,
    used: AtomicUsize,
}

impl QueryPool {
    pub(crate) fn new(global: Option<Arc<dyn MemoryPool>>, limit: usize) -> Self {
        Self {
            global,
            limit: limit.max(1 << 20),
            used: AtomicUsize::new(0),
        }
    }
}

impl fmt::Display for QueryPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "query pool: {} of {} bytes",
            self.used.load(Ordering::Relaxed),
            self.limit
        )
    }
}

impl MemoryPool for QueryPool {
    fn name(&self) -> &str {
        "loupe-query"
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.used.fetch_add(additional, Ordering::Relaxed);
        if let Some(global) = &self.global {
            global.grow(reservation, additional);
        }
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.used.fetch_sub(shrink, Ordering::Relaxed);
        if let Some(global) = &self.global {
            global.shrink(reservation, shrink);
        }
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        let limit = self.limit;
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(additional).filter(|n| *n <= limit)
            })
            .map_err(|used| {
                resources_datafusion_err!(
                    "{} needs {additional} more bytes with {used} of the query's {limit} in use \
                     ([query] memory_bytes)",
                    reservation.consumer().name()
                )
            })?;
        if let Some(global) = &self.global
            && let Err(e) = global.try_grow(reservation, additional)
        {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            return Err(resources_datafusion_err!(
                "the queries running now use all the memory of {BUSY_MARK} ({e})"
            ));
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::execution::memory_pool::MemoryConsumer;

    use super::*;

    #[test]
    fn a_query_is_bounded_by_its_limit_and_all_queries_by_the_global_pool() {
        let global = global(3 << 20);
        let a: Arc<dyn MemoryPool> = Arc::new(QueryPool::new(Some(global.clone()), 2 << 20));
        let b: Arc<dyn MemoryPool> = Arc::new(QueryPool::new(Some(global.clone()), 2 << 20));
        let ra = MemoryConsumer::new("sort").register(&a);
        let rb = MemoryConsumer::new("join").register(&b);
        ra.try_grow(2 << 20).expect("within the query's limit");
        let own = ra.try_grow(1).expect_err("over the query's limit");
        assert!(own.to_string().contains("[query] memory_bytes"), "{own}");
        rb.try_grow(1 << 20)
            .expect("the global pool has 1 MiB left");
        let busy = rb.try_grow(1 << 20).expect_err("global pool spent");
        assert!(busy.to_string().contains(BUSY_MARK), "{busy}");
        assert_eq!(b.reserved(), 1 << 20, "a refused grow is given back");
        ra.free();
        rb.try_grow(1 << 20)
            .expect("space freed by the other query");
        assert_eq!(global.reserved(), 2 << 20);
    }
}
