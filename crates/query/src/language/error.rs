//! Query errors: a byte span into the source, a message, an optional
//! suggestion, and a renderer that draws a caret under the span.
//!
//! Suggestions come from [`closest`], a plain Levenshtein distance over the
//! known names (columns, aggregates, enum values), so `tool_nme` suggests
//! `tool_name`.

use std::fmt;
use std::ops::Range;

/// What kind of mistake a [`ParseError`] reports, so the API can choose a
/// status (syntax → 400, the rest → 422) without reading the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The text does not follow the grammar (unexpected token, bad literal,
    /// unterminated string, malformed JSON).
    Syntax,
    /// A field name that is neither a column nor `attributes.<key>` /
    /// `tags.<key>`.
    UnknownField,
    /// A function name that is not an aggregate.
    UnknownAggregate,
    /// Well-formed but ill-typed: `duration > "abc"`, `avg(status)`,
    /// `bucket(0s)`.
    Type,
    /// Well-typed but meaningless as a whole: a sort key that is not computed,
    /// a duplicate alias, an empty `and`.
    Invalid,
}

/// A query that could not be parsed or checked.
///
/// `span` is a byte range into the text given to [`crate::Query::parse`]
/// (for [`crate::Query::from_json`] it points into the JSON text for syntax
/// errors and is empty, `0..0`, for checks on the decoded query, which has
/// no positions).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at bytes {}..{})", span.start, span.end)]
pub struct ParseError {
    /// Byte offsets of the offending text; may be empty (`n..n`) at the end
    /// of input.
    pub span: Range<usize>,
    /// What is wrong, one sentence without a trailing period.
    pub message: String,
    /// A fix, when one is likely (`did you mean `tool_name`?`).
    pub suggestion: Option<String>,
    /// The class of mistake.
    pub kind: ErrorKind,
}

impl ParseError {
    /// An error of `kind` at `span`.
    pub fn new(kind: ErrorKind, span: Range<usize>, message: impl Into<String>) -> Self {
        Self {
            span,
            message: message.into(),
            suggestion: None,
            kind,
        }
    }

    /// A syntax error at `span`.
    pub fn syntax(span: Range<usize>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Syntax, span, message)
    }

    /// Adds a suggestion.
    pub fn with_suggestion(mut self, suggestion: Option<String>) -> Self {
        self.suggestion = suggestion;
        self
    }

    /// Renders the error against the source it came from: the line holding
    /// the span start, a caret line under the span, and the suggestion.
    ///
    /// ```text
    /// error: unknown field `tool_nme`
    ///   |
    /// 1 | status=error tool_nme=inventory
    ///   |              ^^^^^^^^
    ///   = help: did you mean `tool_name`?
    /// ```
    ///
    /// Columns count characters, not bytes; a span past the end of `source`
    /// is clamped, so rendering never panics.
    pub fn render(&self, source: &str) -> String {
        let start = clamp_to_char(source, self.span.start);
        let end = clamp_to_char(source, self.span.end.max(start));
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[start..]
            .find('\n')
            .map_or(source.len(), |i| start + i);
        let line_no = source[..start].matches('\n').count() + 1;
        let line = &source[line_start..line_end];
        let col = source[line_start..start].chars().count();
        let width = source[start..end.min(line_end)].chars().count().max(1);
        let gutter = " ".repeat(line_no.to_string().len());
        let mut out = format!("error: {}\n{gutter} |\n{line_no} | {line}\n", self.message);
        out.push_str(&format!(
            "{gutter} | {}{}\n",
            " ".repeat(col),
            "^".repeat(width)
        ));
        if let Some(help) = &self.suggestion {
            out.push_str(&format!("{gutter} = help: {help}\n"));
        }
        out
    }
}

/// Moves `at` back to the nearest char boundary inside `s`.
fn clamp_to_char(s: &str, at: usize) -> usize {
    let mut at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// A problem found by a check that knows no positions; the caller attaches
/// the span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub kind: ErrorKind,
    pub message: String,
    pub suggestion: Option<String>,
}

impl Problem {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            suggestion: None,
        }
    }

    pub(crate) fn suggest(mut self, suggestion: Option<String>) -> Self {
        self.suggestion = suggestion;
        self
    }

    pub(crate) fn at(self, span: Range<usize>) -> ParseError {
        ParseError {
            span,
            message: self.message,
            suggestion: self.suggestion,
            kind: self.kind,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Levenshtein edit distance over chars (insert, delete, substitute = 1).
pub fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `word` (case-insensitive), if it is close
/// enough to be a plausible typo: at most a third of the word's length,
/// and at least one edit is always allowed. Ties keep the earlier candidate.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    let limit = (lower.chars().count() / 3).max(1);
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        let d = levenshtein(&lower, candidate);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// `did you mean `x`?` for the closest candidate, if any.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    closest(word, candidates).map(|c| format!("did you mean `{c}`?"))
}
