//! Full-text search with side indexes equals a brute-force substring scan,
//! and the indexes skip parts that cannot match.

use std::collections::BTreeSet;

use loupe_backend::{QueryLimits, QueryResult};
use loupe_model::{ProjectId, Span};
use loupe_query::{PlanOptions, Query};

use crate::{Store, StoreConfig};

const T0: i64 = 1_795_000_000_000_000_000;
const DAY: i64 = 86_400 * 1_000_000_000;
const VOCAB: &[&str] = &[
    "inventory",
    "Timeout",
    "payment",
    "coupon",
    "refund",
    "HTTP",
    "500",
    "retrieval",
    "phone",
    "laptop",
    "Ünïcode",
    "shipping",
    "delayed",
    "in",
];

/// Deterministic spans of batch `b` on day `b % 4`; "zebra" only in batch 2.
fn spans(batch: i64, n: i64, seed: &mut u64) -> Vec<Span> {
    let mut pick = || {
        *seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        VOCAB[((*seed >> 33) % VOCAB.len() as u64) as usize]
    };
    (0..n)
        .map(|i| {
            let mut s = Span::new("p", format!("b{batch}-s{i:03}"));
            s.trace_id = Some(format!("b{batch}-t{}", i / 4));
            s.start_time = Some(T0 + (batch % 4) * DAY + i * 1_000_000);
            s.input = Some(format!("{} {} {}", pick(), pick(), pick()));
            s.output = Some(format!("{}-{}", pick(), pick()));
            if i % 3 == 0 {
                s.error_message = Some(format!("{} failed: {}", pick(), pick()));
            }
            if batch == 2 && i == 7 {
                s.output = Some("a Zebra crossed".into());
            }
            s
        })
        .collect()
}

fn brute_force(all: &[Span], words: &str) -> BTreeSet<String> {
    all.iter()
        .filter(|s| {
            // The search is one phrase (what `Query::parse` makes of one
            // quoted string).
            let phrase = words.to_lowercase();
            [&s.input, &s.output, &s.error_message]
                .into_iter()
                .flatten()
                .any(|t| t.to_lowercase().contains(&phrase))
        })
        .map(|s| s.span_id.clone())
        .collect()
}

async fn search(store: &Store, words: &str) -> (BTreeSet<String>, QueryResult) {
    let filter = if words.is_empty() {
        String::new()
    } else {
        format!("{words:?}")
    };
    let text = format!("from 2026-11-01 to 2027-01-01 {filter} | sort span_id");
    let query = Query::parse(&text).expect("query parses");
    let mut opts = PlanOptions::at(T0);
    opts.default_row_limit = None;
    let plan = loupe_query::plan(&query, opts).expect("plan");
    let project = ProjectId::new("p").expect("project");
    let result = store
        .query_plan(&project, &plan, QueryLimits::default())
        .await
        .expect("query");
    let idx = result
        .columns
        .iter()
        .position(|c| c.name == "span_id")
        .expect("span_id column");
    let ids = result
        .rows
        .iter()
        .filter_map(|r| r[idx].as_str().map(str::to_owned))
        .collect();
    (ids, result)
}

const SEARCHES: &[&str] = &[
    "inventory",
    "timeout phone",
    "TIMEOUT",
    "ent",
    "in",
    "ünï",
    "payment delayed",
    "500 failed",
    "-re",
    "zebra",
    "zebra crossed",
    "crossed zebra",
    "xyzzy",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexed_search_equals_a_substring_scan_and_skips_parts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = StoreConfig {
        data_dir: dir.path().to_owned(),
        compaction_min_parts: 100,
        ..StoreConfig::default()
    };
    let store = Store::open(config.clone(), loupe_rollup::RollupConfig::default()).expect("open");
    let mut seed = 7;
    let mut all = Vec::new();
    for batch in 0..4 {
        let batch_spans = spans(batch, 60, &mut seed);
        all.extend(batch_spans.clone());
        store.append(batch_spans).await.expect("append");
        store.flush_all().await.expect("flush");
    }
    assert_eq!(store.index_text().expect("index"), 4);
    assert_eq!(store.index_text().expect("index again"), 0, "idempotent");
    // Unindexed data: a memtable and a part without an index.
    let unflushed = spans(5, 20, &mut seed);
    all.extend(unflushed.clone());
    store.append(unflushed).await.expect("append");
    for words in SEARCHES {
        let (ids, _) = search(&store, words).await;
        assert_eq!(ids, brute_force(&all, words), "search {words:?}");
    }
    // Several words are a phrase: in order and adjacent, not merely present.
    assert_eq!(search(&store, "Zebra CROSSED").await.0.len(), 1);
    assert!(search(&store, "crossed zebra").await.0.is_empty());
    let (_, every) = search(&store, "").await;
    assert_eq!(every.stats.parts_scanned, 4);
    let (ids, zebra) = search(&store, "zebra").await;
    assert_eq!(ids.len(), 1);
    assert_eq!(zebra.stats.parts_scanned, 1, "the index skips 3 parts");
    let (_, none) = search(&store, "xyzzy").await;
    assert_eq!(none.stats.parts_scanned, 0);
    let (_, short) = search(&store, "in").await;
    assert_eq!(short.stats.parts_scanned, 4, "short words do not prune");

    // A part without an index is scanned, never skipped.
    store.flush_all().await.expect("flush");
    let (ids, r) = search(&store, "zebra").await;
    assert_eq!(ids.len(), 1);
    assert_eq!(r.stats.parts_scanned, 2);

    // A read-only store uses the indexes and writes nothing.
    let ro = Store::open_read_only(config.clone(), loupe_rollup::RollupConfig::default())
        .expect("read-only");
    for words in SEARCHES {
        let (ids, _) = search(&ro, words).await;
        assert_eq!(ids, brute_force(&all, words), "read-only search {words:?}");
    }
    assert!(ro.index_text().is_err(), "read-only stores build nothing");

    // Compaction replaces parts; the next pass re-indexes and tidies up.
    drop(ro);
    store.shutdown().await.expect("shutdown");
    let store = Store::open(
        StoreConfig {
            compaction_min_parts: 2,
            ..config
        },
        loupe_rollup::RollupConfig::default(),
    )
    .expect("reopen");
    let report = store.maintain().await.expect("maintain");
    assert!(report.compacted_parts > 0, "{report:?}");
    assert!(report.indexed_parts > 0, "{report:?}");
    let indexes = std::fs::read_dir(dir.path().join(super::DIR))
        .expect("fts dir")
        .count();
    assert_eq!(indexes, store.stats().parts, "one index per live part");
    for words in SEARCHES {
        let (ids, _) = search(&store, words).await;
        assert_eq!(ids, brute_force(&all, words), "after compaction {words:?}");
    }
}

/// The stored format never changes silently: the trigram hash is pinned
/// (values computed independently of this code), an index round-trips,
/// and a damaged or foreign file is refused, never misread.
#[test]
fn the_index_format_is_pinned_and_damage_is_refused() {
    use super::{BLOCK, Index, hash};
    assert_eq!(hash(b"abc"), 0x33eb_af99_27cb_c5bd);
    assert_eq!(hash("ünï".as_bytes()), 0xbd46_82f3_c47e_a1e3);

    // A word's hash is the hash of 0xFF and the word (built without a
    // buffer).
    assert_eq!(super::word_hash("order"), hash(b"\xFForder"));
    let mut hashes = super::Hashes::default();
    super::text_hashes("Refund for ORDER 42", &mut hashes);
    // 17 trigrams and 4 words.
    assert_eq!(hashes.len(), "refund for order 42".chars().count() - 2 + 4);
    let index = Index {
        rows: (BLOCK + 5) as u64,
        blocks: vec![
            super::Filter::with_items(&hashes),
            super::Filter::with_items(&Default::default()),
        ],
    };
    let bytes = index.encode();
    assert_eq!(Index::decode(&bytes).as_ref(), Ok(&index));
    assert_eq!(
        index.candidates(&["order".into()]),
        vec![0..BLOCK],
        "only the first block can hold it"
    );
    assert_eq!(
        index.candidates(&["in".into()]),
        vec![0..BLOCK + 5],
        "short words narrow nothing"
    );
    assert!(index.candidates(&["xyzzy".into()]).is_empty());
    // Inner words are required whole, edge words only as trigrams.
    assert_eq!(index.candidates(&["der 4".into()]), vec![0..BLOCK]);
    assert!(
        index.candidates(&["or 42 x".into()]).is_empty(),
        "42 is there, but not the trigram '2 x'"
    );
    assert!(
        index.candidates(&[" 4 ".into()]).is_empty(),
        "the word 4 is not in the text"
    );

    let mut flipped = bytes.clone();
    flipped[20] ^= 1;
    assert!(matches!(Index::decode(&flipped), Err(e) if e.contains("checksum")));
    assert!(Index::decode(&bytes[..bytes.len() - 1]).is_err());
    assert!(Index::decode(b"").is_err());
    let mut foreign = bytes.clone();
    foreign[0] = b'X';
    let body = foreign.len() - 4;
    let crc = crc32fast::hash(&foreign[..body]).to_le_bytes();
    foreign[body..].copy_from_slice(&crc);
    assert!(matches!(Index::decode(&foreign), Err(e) if e.contains("not a Loupe")));
}

/// Within a part, only the blocks that may match are read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rare_word_reads_only_its_block() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = StoreConfig {
        data_dir: dir.path().to_owned(),
        ..StoreConfig::default()
    };
    let store = Store::open(config, loupe_rollup::RollupConfig::default()).expect("open");
    let n = 3 * super::BLOCK as i64;
    let mut seed = 11;
    // One day, one part; the word sits in the middle of it.
    let mut all: Vec<Span> = spans(0, n, &mut seed);
    let needle = n as usize / 2;
    all[needle].input = Some("an okapi appeared".into());
    store.append(all.clone()).await.expect("append");
    store.flush_all().await.expect("flush");
    assert_eq!(store.stats().parts, 1);
    store.index_text().expect("index");
    let (ids, r) = search(&store, "okapi").await;
    assert_eq!(ids, brute_force(&all, "okapi"));
    assert_eq!(ids.len(), 1);
    assert_eq!(r.stats.parts_scanned, 1);
    let read = r.stats.rows_scanned.expect("rows scanned");
    assert!(read <= super::BLOCK as u64, "read {read} of {n} rows");
    let (ids, r) = search(&store, "inventory").await;
    assert_eq!(ids, brute_force(&all, "inventory"));
    assert_eq!(
        r.stats.rows_scanned,
        Some(n as u64),
        "a common word reads every block"
    );
}
