//! Repository hygiene: every Rust source opens with a `//!` doc saying what
//! it is, and every crate depends only on what the architecture map allows.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "target" || n == "data") {
                continue;
            }
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn crates_dir() -> PathBuf {
    std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("..")
}

#[test]
fn every_rust_file_starts_with_a_module_doc() {
    let mut files = Vec::new();
    rust_files(&crates_dir(), &mut files);
    assert!(files.len() > 20, "found only {} files", files.len());
    let missing: Vec<_> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .collect();
    assert!(
        missing.is_empty(),
        "files without a leading //! doc: {missing:?}"
    );
}

/// The normal (non-dev) dependencies of `crates/<krate>/Cargo.toml`.
fn dependencies(krate: &str) -> Vec<String> {
    let manifest = std::fs::read_to_string(crates_dir().join(krate).join("Cargo.toml"))
        .unwrap_or_else(|e| panic!("crates/{krate}/Cargo.toml: {e}"));
    let mut out = Vec::new();
    let mut inside = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = line == "[dependencies]";
            continue;
        }
        if inside && !line.is_empty() && !line.starts_with('#') {
            let name = line
                .split(|c: char| c == '.' || c == '=' || c.is_whitespace())
                .next()
                .unwrap_or_default();
            out.push(name.to_owned());
        }
    }
    out
}

/// The crate map of docs/ARCHITECTURE.md ("Dependency rules"): which
/// workspace crates each crate may depend on. Data flows one way: sources
/// → pipeline → store/rollups → query → API/alerts → the binary.
const MAY_USE: &[(&str, &[&str])] = &[
    ("model", &[]),
    ("fsutil", &[]),
    ("console", &[]),
    ("normalise", &["model"]),
    ("rollup", &["model", "normalise"]),
    ("backend", &["model"]),
    ("query", &["model", "backend"]),
    ("pipeline", &["model", "normalise", "backend", "fsutil"]),
    ("ingest", &["model", "normalise"]),
    ("gen", &["model", "normalise", "ingest"]),
    (
        "store",
        &["model", "normalise", "backend", "rollup", "fsutil"],
    ),
    (
        "dify",
        &["model", "normalise", "backend", "pipeline", "fsutil"],
    ),
    ("alerts", &["model", "rollup", "fsutil"]),
    ("rca", &["model", "normalise", "backend", "query"]),
    ("analytics", &["model", "backend"]),
    ("clickhouse", &["model", "backend", "rollup"]),
    (
        "api",
        &[
            "model",
            "normalise",
            "backend",
            "pipeline",
            "ingest",
            "query",
            "rollup",
            "alerts",
            "rca",
            "analytics",
            "console",
            "fsutil",
        ],
    ),
    (
        "loupe",
        &[
            "model",
            "normalise",
            "backend",
            "pipeline",
            "ingest",
            "query",
            "rollup",
            "alerts",
            "store",
            "clickhouse",
            "api",
            "dify",
            "gen",
            "rca",
            "analytics",
            "console",
            "fsutil",
        ],
    ),
    (
        "bench",
        &[
            "model",
            "normalise",
            "backend",
            "pipeline",
            "query",
            "rollup",
            "store",
            "clickhouse",
            "dify",
            "gen",
            "rca",
            "fsutil",
        ],
    ),
];

/// Heavy or layer-defining external crates and the only crates that may
/// use them: the query engine stays in the store,
/// network serving in the API (and the binary that starts it), protobuf in
/// the decoders, PostgreSQL in the Dify connector.
const ONLY_IN: &[(&str, &[&str])] = &[
    ("datafusion", &["store"]),
    ("sqlparser", &["store"]),
    ("parquet", &["store", "query", "bench"]),
    ("axum", &["api", "loupe"]),
    ("tonic", &["api", "loupe"]),
    ("tower", &["api"]),
    ("tower-http", &["api"]),
    ("opentelemetry-proto", &["ingest", "api", "gen"]),
    ("prost", &["ingest", "api", "loupe", "bench"]),
    ("tokio-postgres", &["dify", "bench"]),
    ("lettre", &["alerts"]),
    ("reqwest", &["alerts", "loupe", "bench", "clickhouse"]),
];

#[test]
fn every_crate_depends_only_on_what_the_architecture_map_allows() {
    let mut crates: Vec<String> = std::fs::read_dir(crates_dir())
        .expect("crates/")
        .flatten()
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    crates.sort();
    let mapped: Vec<&str> = MAY_USE.iter().map(|(k, _)| *k).collect();
    for krate in &crates {
        assert!(
            mapped.contains(&krate.as_str()),
            "crates/{krate} is not in the dependency map: add it to MAY_USE here and to \
             docs/ARCHITECTURE.md"
        );
    }
    for (krate, allowed) in MAY_USE {
        assert!(
            crates.iter().any(|c| c == krate),
            "MAY_USE names crates/{krate}, which does not exist"
        );
        for dep in dependencies(krate) {
            if let Some(inner) = dep.strip_prefix("loupe-") {
                assert!(
                    allowed.contains(&inner),
                    "crates/{krate} must not depend on loupe-{inner} (allowed: {allowed:?})"
                );
            }
            if let Some((_, users)) = ONLY_IN.iter().find(|(name, _)| *name == dep) {
                assert!(
                    users.contains(krate),
                    "crates/{krate} must not depend on {dep} (only {users:?} may)"
                );
            }
        }
    }
}
