//! Loupe's web console, embedded: the files under `assets/` compiled into
//! the binary with `include_bytes!`, so `cargo build` needs no front-end
//! tooling and the console works offline (no CDN, no npm build step).
//!
//! The console is plain modern JavaScript (ES modules), CSS and hand-made
//! SVG charts; it talks to the same HTTP API as every other client
//! (`POST /api/v1/query`, `GET /api/v1/traces/{id}`, …). `loupe-api`'s
//! `routes::console` serves it:
//!
//! - [`index_html`] for every page path (`/`, `/runs`, `/runs/<id>`, …), so
//!   deep links work; it names the assets under `/assets/<version>/`, where
//!   `<version>` is [`version`] (a hash of every asset), so the assets can be
//!   cached forever and a new build is fetched at once;
//! - [`asset`] for `/assets/<version>/<path>`.

#![warn(missing_docs)]

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// Path under `assets/` (`app.js`, `pages/runs.js`).
    pub path: &'static str,
    /// The bytes.
    pub bytes: &'static [u8],
    /// `Content-Type` to answer with.
    pub content_type: &'static str,
}

macro_rules! assets {
    ($($path:literal),+ $(,)?) => {
        &[$(Asset {
            path: $path,
            bytes: include_bytes!(concat!("../assets/", $path)),
            content_type: content_type($path),
        }),+]
    };
}

/// Every file under `assets/` (a test checks that none is missing).
pub const ASSETS: &[Asset] = assets![
    "index.html",
    "style.css",
    "favicon.svg",
    "app.js",
    "api.js",
    "i18n.js",
    "format.js",
    "dom.js",
    "charts.js",
    "json.js",
    "timerange.js",
    "querybar.js",
    "widgets.js",
    "pages/alerts.js",
    "pages/alert_rule.js",
    "pages/dify.js",
    "pages/dify-health.js",
    "pages/dify-cleanup.js",
    "pages/tag-rules.js",
    "pages/retention.js",
    "pages/budgets.js",
    "pages/login.js",
    "pages/overview.js",
    "pages/runs.js",
    "pages/run.js",
    "pages/settings.js",
    "pages/keys.js",
    "pages/timelines.js",
    "pages/rca.js",
    "pages/analytics.js",
    "pages/logs.js",
];

/// Whether `path` ends with `ext` (usable in constants).
const fn ends_with(path: &[u8], ext: &[u8]) -> bool {
    if path.len() < ext.len() {
        return false;
    }
    let mut i = 0;
    while i < ext.len() {
        if path[path.len() - ext.len() + i] != ext[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The content type of a path, by its extension.
pub const fn content_type(path: &str) -> &'static str {
    let b = path.as_bytes();
    if ends_with(b, b".js") {
        "text/javascript; charset=utf-8"
    } else if ends_with(b, b".css") {
        "text/css; charset=utf-8"
    } else if ends_with(b, b".html") {
        "text/html; charset=utf-8"
    } else if ends_with(b, b".svg") {
        "image/svg+xml"
    } else if ends_with(b, b".json") {
        "application/json"
    } else {
        "application/octet-stream"
    }
}

/// A short hash of every asset: changes whenever any file does.
pub fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let mut h = Sha256::new();
        for a in ASSETS {
            h.update(a.path.as_bytes());
            h.update([0]);
            h.update((a.bytes.len() as u64).to_le_bytes());
            h.update(a.bytes);
        }
        hex::encode(&h.finalize()[..6])
    })
}

/// The page every console path answers with: `index.html` with its asset
/// base set to `/assets/<version>/`.
pub fn index_html() -> &'static str {
    static INDEX: OnceLock<String> = OnceLock::new();
    INDEX.get_or_init(|| {
        let raw = ASSETS
            .iter()
            .find(|a| a.path == "index.html")
            .map(|a| String::from_utf8_lossy(a.bytes).into_owned())
            .unwrap_or_default();
        raw.replace("{{ASSETS}}", &format!("/assets/{}", version()))
    })
}

/// The asset at `path` (relative to `assets/`).
pub fn asset(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &std::path::Path, prefix: &str, out: &mut Vec<String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("assets dir")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("utf-8 name")
                .to_owned();
            if path.is_dir() {
                files(&path, &format!("{prefix}{name}/"), out);
            } else {
                out.push(format!("{prefix}{name}"));
            }
        }
    }

    #[test]
    fn every_file_under_assets_is_embedded_and_typed() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
        let mut on_disk = Vec::new();
        files(&dir, "", &mut on_disk);
        let mut embedded: Vec<String> = ASSETS.iter().map(|a| a.path.to_owned()).collect();
        embedded.sort();
        on_disk.sort();
        assert_eq!(
            embedded, on_disk,
            "ASSETS must list every file under assets/"
        );
        for a in ASSETS {
            assert_ne!(a.content_type, "application/octet-stream", "{}", a.path);
        }
    }

    #[test]
    fn index_names_the_versioned_asset_base_and_no_outside_host() {
        let html = index_html();
        assert!(
            html.contains(&format!("/assets/{}/app.js", version())),
            "{html}"
        );
        assert!(!html.contains("{{ASSETS}}"));
        for a in ASSETS {
            let text = String::from_utf8_lossy(a.bytes);
            let outside = text
                .match_indices("http")
                .filter(|(i, _)| {
                    let rest = &text[*i..];
                    (rest.starts_with("http://") || rest.starts_with("https://"))
                        && !rest.starts_with("http://www.w3.org/")
                })
                .count();
            assert_eq!(
                outside, 0,
                "{} names an outside URL: the console must work offline",
                a.path
            );
        }
    }
}
