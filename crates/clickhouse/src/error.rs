//! The backend's errors, and which of them are the caller's fault.

use loupe_backend::StoreError;

/// What went wrong talking to ClickHouse.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is wrong; the message names the key.
    #[error("{0}")]
    Config(String),
    /// The server could not be reached or the exchange broke off.
    #[error("clickhouse unreachable: {0}")]
    Unreachable(String),
    /// The server refused a statement (its `Code: N` text, bounded).
    #[error("clickhouse answered {status}: {message}")]
    Server {
        /// HTTP status of the answer.
        status: u16,
        /// ClickHouse's exception code, when the text carried one.
        code: Option<u32>,
        /// The exception text, cut at 2 KiB.
        message: String,
    },
    /// An answer was larger than `max_response_bytes`.
    #[error("clickhouse answer larger than {limit} bytes")]
    TooLarge {
        /// The bound that was hit.
        limit: usize,
    },
    /// An answer did not have the expected shape.
    #[error("unexpected clickhouse answer: {0}")]
    Decode(String),
    /// The request is wrong (a bad cursor, a filter the plan cannot hold).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The answer would hold more than a read may (runs of a session or
    /// user): narrow the question.
    #[error("{0}")]
    TooMany(String),
    /// This backend (or this server's profile) cannot answer it yet.
    #[error("not supported by the clickhouse backend: {0}")]
    Unsupported(String),
}

/// ClickHouse codes that mean "too much at once, retry later":
/// TOO_MANY_SIMULTANEOUS_QUERIES, TOO_MANY_PARTS, MEMORY_LIMIT_EXCEEDED
/// (per query: not retryable), TIMEOUT_EXCEEDED.
const BUSY_CODES: &[u32] = &[202, 252];

impl From<Error> for StoreError {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(m) => StoreError::Invalid(m),
            Error::TooMany(m) => StoreError::ResourcesExhausted(m),
            Error::Unsupported(m) => StoreError::Unsupported(m),
            Error::Server {
                code: Some(241), ..
            } => StoreError::ResourcesExhausted(e.to_string()),
            Error::Server { code: Some(c), .. } if BUSY_CODES.contains(&c) => {
                StoreError::Overloaded {
                    retry_after: std::time::Duration::from_secs(1),
                }
            }
            other => StoreError::Internal(other.to_string()),
        }
    }
}

/// The exception code of a ClickHouse error text (`Code: 60, e.displayText() = …`
/// on 18.16, `Code: 60. DB::Exception: …` later).
pub(crate) fn code_of(text: &str) -> Option<u32> {
    let rest = text.trim_start().strip_prefix("Code:")?.trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_read_from_old_and_new_error_texts() {
        assert_eq!(
            code_of("Code: 60, e.displayText() = DB::Exception"),
            Some(60)
        );
        assert_eq!(code_of("Code: 241. DB::Exception: Memory limit"), Some(241));
        assert_eq!(code_of("oops"), None);
    }

    #[test]
    fn callers_mistakes_are_4xx_and_server_failures_5xx() {
        assert!(matches!(
            StoreError::from(Error::Invalid("x".into())),
            StoreError::Invalid(_)
        ));
        assert!(matches!(
            StoreError::from(Error::Unsupported("x".into())),
            StoreError::Unsupported(_)
        ));
        let server = |code| Error::Server {
            status: 500,
            code: Some(code),
            message: String::new(),
        };
        assert!(matches!(
            StoreError::from(server(60)),
            StoreError::Internal(_)
        ));
        assert!(StoreError::from(server(202)).is_retryable());
        assert!(matches!(
            StoreError::from(Error::Unreachable("x".into())),
            StoreError::Internal(_)
        ));
    }
}
