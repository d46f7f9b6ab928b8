//! Keyset cursor for span pages: the (start_time, span_id) of the last row.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Position after which the next page starts (pages are newest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Start time of the last row of the previous page (ns; `i64::MIN` when unknown).
    pub start_time: i64,
    /// Span id of that row.
    pub span_id: String,
}

/// A cursor string that was not produced by Loupe.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid cursor: pass the `next_cursor` value of the previous page unchanged")]
pub struct InvalidCursor;

impl Cursor {
    /// The opaque text form used in APIs.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}", self.start_time, self.span_id))
    }

    /// Parses the text form.
    pub fn decode(text: &str) -> Result<Self, InvalidCursor> {
        let raw = URL_SAFE_NO_PAD.decode(text).map_err(|_| InvalidCursor)?;
        let raw = String::from_utf8(raw).map_err(|_| InvalidCursor)?;
        let (time, id) = raw.split_once(':').ok_or(InvalidCursor)?;
        Ok(Self {
            start_time: time.parse().map_err(|_| InvalidCursor)?,
            span_id: id.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = Cursor {
            start_time: -5,
            span_id: "ab:cd".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()).ok(), Some(c));
        assert!(Cursor::decode("%%%").is_err());
        assert!(Cursor::decode(&URL_SAFE_NO_PAD.encode("nocolon")).is_err());
    }
}
