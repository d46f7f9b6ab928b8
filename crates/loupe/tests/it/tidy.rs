//! Repository hygiene: every Rust source opens with a `//!` doc saying what
//! it is, and lower crates do not depend on the serving stack.

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

#[test]
fn lower_layers_do_not_depend_on_the_serving_stack_or_the_query_engine() {
    let banned: &[(&str, &[&str])] = &[
        (
            "model",
            &[
                "axum",
                "tonic",
                "datafusion",
                "opentelemetry-proto",
                "tokio",
            ],
        ),
        (
            "normalise",
            &[
                "axum",
                "tonic",
                "datafusion",
                "opentelemetry-proto",
                "tokio",
            ],
        ),
        (
            "backend",
            &["axum", "tonic", "datafusion", "opentelemetry-proto"],
        ),
        (
            "store",
            &[
                "axum",
                "tonic",
                "opentelemetry-proto",
                "loupe-ingest",
                "loupe-api",
            ],
        ),
        ("ingest", &["axum", "tonic", "datafusion", "loupe-store"]),
    ];
    for (krate, deps) in banned {
        let manifest = std::fs::read_to_string(crates_dir().join(krate).join("Cargo.toml"))
            .unwrap_or_else(|e| panic!("crates/{krate}/Cargo.toml: {e}"));
        let deps_section = manifest
            .split("[dependencies]")
            .nth(1)
            .map(|s| s.split("\n[").next().unwrap_or(""))
            .unwrap_or("");
        for dep in *deps {
            let uses = deps_section.lines().any(|l| {
                l.trim_start().starts_with(&format!("{dep}."))
                    || l.trim_start().starts_with(&format!("{dep} "))
            });
            assert!(!uses, "crates/{krate} must not depend on {dep}");
        }
    }
}
