//! The lexer: query text → tokens with byte spans.
//!
//! Words are maximal runs of `[A-Za-z0-9_.:+-]` (plus any non-ASCII
//! letter), so field paths (`tags.category`), numbers (`-1.5e3`), durations
//! (`250ms`) and RFC 3339 timestamps (`2026-11-01T00:00:00Z`) are each one
//! token; the parser decides what a word means from where it stands.
//! Keywords are words too (matched case-insensitively by the parser), so a
//! tag key or a bare value may be spelled like one.

use std::ops::Range;

use super::error::ParseError;

/// One token kind. Words and strings carry their text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// A bare word: identifier, keyword, number, duration, timestamp.
    Word(String),
    /// A quoted string, escapes resolved.
    Str(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Pipe,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// End of input (span is empty, at the end).
    Eof,
}

impl Tok {
    /// How the token is named in "expected …, found …" messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Word(w) => format!("`{w}`"),
            Tok::Str(_) => "a quoted string".into(),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::LBracket => "`[`".into(),
            Tok::RBracket => "`]`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Pipe => "`|`".into(),
            Tok::Eq => "`=`".into(),
            Tok::Ne => "`!=`".into(),
            Tok::Lt => "`<`".into(),
            Tok::Le => "`<=`".into(),
            Tok::Gt => "`>`".into(),
            Tok::Ge => "`>=`".into(),
            Tok::Eof => "the end of the query".into(),
        }
    }
}

/// A token and the bytes it came from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub span: Range<usize>,
}

/// Whether `c` may appear in a bare word.
pub(crate) fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '+' | '-') || c.is_alphabetic()
}

/// Splits `src` into tokens, ending with [`Tok::Eof`].
pub(crate) fn lex(src: &str) -> Result<Vec<Token>, ParseError> {
    let mut out = Vec::new();
    let mut chars = src.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let single = match c {
            '(' => Some(Tok::LParen),
            ')' => Some(Tok::RParen),
            '[' => Some(Tok::LBracket),
            ']' => Some(Tok::RBracket),
            ',' => Some(Tok::Comma),
            '|' => Some(Tok::Pipe),
            _ => None,
        };
        if let Some(tok) = single {
            chars.next();
            out.push(Token {
                tok,
                span: start..start + 1,
            });
            continue;
        }
        match c {
            '=' | '!' | '<' | '>' => {
                chars.next();
                let next_eq = chars.peek().is_some_and(|&(_, n)| n == '=');
                if next_eq {
                    chars.next();
                }
                let (tok, len) = match (c, next_eq) {
                    ('=', false) => (Tok::Eq, 1),
                    ('=', true) => (Tok::Eq, 2),
                    ('!', true) => (Tok::Ne, 2),
                    ('<', false) => (Tok::Lt, 1),
                    ('<', true) => (Tok::Le, 2),
                    ('>', false) => (Tok::Gt, 1),
                    ('>', true) => (Tok::Ge, 2),
                    _ => {
                        return Err(ParseError::syntax(start..start + 1, "unexpected `!`")
                            .with_suggestion(Some("write `!=` or `NOT`".into())));
                    }
                };
                out.push(Token {
                    tok,
                    span: start..start + len,
                });
            }
            '"' | '\'' => {
                chars.next();
                let (text, end) = lex_string(src, start, c, &mut chars)?;
                out.push(Token {
                    tok: Tok::Str(text),
                    span: start..end,
                });
            }
            c if is_word_char(c) => {
                let mut end = start;
                while let Some(&(i, w)) = chars.peek() {
                    if !is_word_char(w) {
                        break;
                    }
                    end = i + w.len_utf8();
                    chars.next();
                }
                out.push(Token {
                    tok: Tok::Word(src[start..end].to_string()),
                    span: start..end,
                });
            }
            other => {
                return Err(ParseError::syntax(
                    start..start + other.len_utf8(),
                    format!("unexpected character `{other}`"),
                ));
            }
        }
    }
    out.push(Token {
        tok: Tok::Eof,
        span: src.len()..src.len(),
    });
    Ok(out)
}

type Chars<'a> = std::iter::Peekable<std::str::CharIndices<'a>>;

/// Reads a string body after its opening `quote` (at byte `start`); returns
/// the unescaped text and the byte just past the closing quote.
fn lex_string(
    src: &str,
    start: usize,
    quote: char,
    chars: &mut Chars<'_>,
) -> Result<(String, usize), ParseError> {
    let mut text = String::new();
    while let Some((i, c)) = chars.next() {
        if c == quote {
            return Ok((text, i + 1));
        }
        if c != '\\' {
            text.push(c);
            continue;
        }
        let Some((_, e)) = chars.next() else { break };
        let escaped = match e {
            '"' | '\'' | '\\' => e,
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            'u' => lex_unicode_escape(src, i, chars)?,
            other => {
                return Err(ParseError::syntax(
                    i..i + 1 + other.len_utf8(),
                    format!("unknown escape `\\{other}`"),
                )
                .with_suggestion(Some(
                    "escapes are \\\" \\' \\\\ \\n \\t \\r \\u{hex}".into(),
                )));
            }
        };
        text.push(escaped);
    }
    Err(ParseError::syntax(start..src.len(), "unterminated string")
        .with_suggestion(Some(format!("close it with {quote}"))))
}

/// Reads `{hex}` after `\u` (the backslash is at byte `at`).
fn lex_unicode_escape(src: &str, at: usize, chars: &mut Chars<'_>) -> Result<char, ParseError> {
    let bad = |end: usize| {
        ParseError::syntax(at..end, "bad unicode escape")
            .with_suggestion(Some("write it as \\u{1F600}".into()))
    };
    if chars.next_if(|&(_, c)| c == '{').is_none() {
        return Err(bad(at + 2));
    }
    let mut hex = String::new();
    loop {
        match chars.next() {
            Some((i, '}')) => {
                return u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| !hex.is_empty() && hex.len() <= 6)
                    .and_then(char::from_u32)
                    .ok_or_else(|| bad(i + 1));
            }
            Some((_, c)) if c.is_ascii_hexdigit() => hex.push(c),
            Some((i, c)) => return Err(bad(i + c.len_utf8())),
            None => return Err(bad(src.len())),
        }
    }
}
