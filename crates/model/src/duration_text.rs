//! Durations as human text in config files and JSON (`"100ms"`, `"30s"`,
//! `"5m"`): `#[serde(with = "loupe_model::duration_text")]`. One helper for
//! every crate, so all settings read and print durations the same way.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Writes a duration as human text (`"1m 30s"`).
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

/// Reads a duration from human text; the error names the text and shows
/// what a valid one looks like.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "invalid duration {text:?}: {e} (try \"100ms\", \"30s\", \"5m\")"
        ))
    })
}
