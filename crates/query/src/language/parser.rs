//! The recursive-descent parser: tokens → [`Query`], checking types as it
//! goes so every error points at the text at fault.
//!
//! This file holds the cursor and the filter grammar (precedence: `OR` <
//! `AND`/juxtaposition < `NOT` < primary); [`stages`] holds the pipeline
//! (`by`, aggregates, `sort`, `limit`/`top`) and the time range.

mod stages;

use std::ops::Range;

use super::ast::{CmpOp, Expr, Query, SortBy, Source};
use super::check;
use super::error::{ErrorKind, ParseError, Problem};
use super::field::Field;
use super::lexer::{Tok, Token, lex};
use super::values::{Literal, Value, classify, parse_timestamp};

/// Parses a whole query.
pub(crate) fn parse_query(src: &str) -> Result<Query, ParseError> {
    if src.len() > MAX_QUERY_BYTES {
        return Err(ParseError::new(
            ErrorKind::Invalid,
            MAX_QUERY_BYTES..src.len(),
            format!(
                "the query is {} bytes, more than the limit of {MAX_QUERY_BYTES}",
                src.len()
            ),
        ));
    }
    Parser::new(src)?.query()
}

/// Parses a lone field (`tags["a b"]`), for the JSON form: a span field,
/// else a log field (the JSON form names fields before its `source`;
/// [`crate::Query::validate`] checks each against it).
pub(crate) fn parse_field_text(src: &str) -> Result<Field, ParseError> {
    either_source(src, |p| p.field())
}

/// Parses a lone sort target (`p95(duration)`, `tags.category`, `slowest`),
/// for the JSON form (fields of either source, as [`parse_field_text`]).
pub(crate) fn parse_sort_by_text(src: &str) -> Result<SortBy, ParseError> {
    either_source(src, |p| p.sort_by())
}

/// Runs `read` over the whole of `src` as spans, then as logs when the
/// spans reading names an unknown field; the spans error wins otherwise.
fn either_source<T>(
    src: &str,
    read: impl Fn(&mut Parser) -> Result<T, ParseError>,
) -> Result<T, ParseError> {
    let whole = |source: Source| -> Result<T, ParseError> {
        let mut p = Parser::new(src)?;
        p.source = source;
        let out = read(&mut p)?;
        p.expect_end()?;
        Ok(out)
    };
    match whole(Source::Spans) {
        Err(e) if e.kind == ErrorKind::UnknownField => whole(Source::Logs).map_err(|_| e),
        other => other,
    }
}

/// A cursor over the tokens.
pub(crate) struct Parser {
    toks: Vec<Token>,
    pos: usize,
    /// Inside `run has ( … )`, where another `run has` is an error.
    in_run: bool,
    /// Current nesting of `NOT` and parentheses.
    depth: usize,
    /// Filter terms read so far (comparisons, `exists`, text searches).
    terms: usize,
    /// The table the query reads (`logs | …`), which decides its fields.
    pub(crate) source: Source,
}

/// Deepest nesting of `NOT` and parentheses the parser accepts.
pub(crate) const MAX_DEPTH: usize = 64;

/// Most filter terms (comparisons, `in`, `contains`, `exists`, quoted
/// text) in one query. Each becomes a predicate every scanned row is
/// tested against; a question needing more is better asked with `in (…)`.
pub(crate) const MAX_TERMS: usize = 1_024;

/// Most values in one `in (…)` list.
pub(crate) const MAX_IN_VALUES: usize = 10_000;

/// Longest query text, bytes (the tokens are held in memory at once).
pub(crate) const MAX_QUERY_BYTES: usize = 1 << 20;

impl Parser {
    fn new(src: &str) -> Result<Self, ParseError> {
        Ok(Self {
            toks: lex(src)?,
            pos: 0,
            in_run: false,
            depth: 0,
            terms: 0,
            source: Source::Spans,
        })
    }

    /// The token `n` ahead (the final `Eof` repeats forever).
    fn peek_at(&self, n: usize) -> &Token {
        let last = self.toks.len().saturating_sub(1);
        &self.toks[(self.pos + n).min(last)]
    }

    fn peek(&self) -> &Token {
        self.peek_at(0)
    }

    fn bump(&mut self) -> Token {
        let tok = self.peek().clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        tok
    }

    /// Whether the token `n` ahead is the keyword `kw` (any case).
    fn word_at(&self, n: usize, kw: &str) -> bool {
        matches!(&self.peek_at(n).tok, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }

    fn is_word_at(&self, n: usize) -> bool {
        matches!(self.peek_at(n).tok, Tok::Word(_))
    }

    /// The end byte of the last consumed token.
    fn prev_end(&self) -> usize {
        match self.pos.checked_sub(1) {
            Some(i) => self.toks[i].span.end,
            None => 0,
        }
    }

    fn unexpected(&self, expected: &str) -> ParseError {
        let tok = self.peek();
        ParseError::syntax(
            tok.span.clone(),
            format!("expected {expected}, found {}", tok.tok.describe()),
        )
    }

    fn expect(&mut self, tok: &Tok, expected: &str) -> Result<Token, ParseError> {
        if &self.peek().tok == tok {
            Ok(self.bump())
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn expect_end(&mut self) -> Result<(), ParseError> {
        match self.peek().tok {
            Tok::Eof => Ok(()),
            _ => Err(self.unexpected("the end of the input")),
        }
    }

    fn at_stage_end(&self) -> bool {
        matches!(self.peek().tok, Tok::Pipe | Tok::Eof)
    }

    /// Whether the next tokens start a time range (`last 7d`, `from … to`).
    fn at_time(&self) -> bool {
        (self.word_at(0, "last") || self.word_at(0, "from"))
            && matches!(self.peek_at(1).tok, Tok::Word(_) | Tok::Str(_))
    }

    /// Whether the next token can begin a filter term (for juxtaposition).
    fn starts_term(&self) -> bool {
        match &self.peek().tok {
            Tok::Word(w) => {
                !(w.eq_ignore_ascii_case("or") || w.eq_ignore_ascii_case("and") || self.at_time())
            }
            Tok::Str(_) | Tok::LParen => true,
            _ => false,
        }
    }

    /// `or_expr := and_expr ("OR" and_expr)*`
    fn or_expr(&mut self) -> Result<Expr, ParseError> {
        let mut args = vec![self.and_expr()?];
        while self.word_at(0, "or") {
            self.bump();
            args.push(self.and_expr()?);
        }
        Ok(if args.len() == 1 {
            args.remove(0)
        } else {
            Expr::Or(args)
        })
    }

    /// `and_expr := unary (("AND")? unary)*`
    fn and_expr(&mut self) -> Result<Expr, ParseError> {
        let mut args = vec![self.unary()?];
        loop {
            if self.word_at(0, "and") {
                self.bump();
            } else if !self.starts_term() {
                break;
            }
            args.push(self.unary()?);
        }
        Ok(if args.len() == 1 {
            args.remove(0)
        } else {
            Expr::And(args)
        })
    }

    /// `unary := "NOT" unary | primary`. Every nested construct passes
    /// through here, so this is where nesting depth is bounded: hostile
    /// input must get an error, not a stack overflow.
    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.depth >= MAX_DEPTH {
            return Err(ParseError::new(
                ErrorKind::Invalid,
                self.peek().span.clone(),
                format!("the filter is nested more than {MAX_DEPTH} levels deep"),
            ));
        }
        self.depth += 1;
        let result = if self.word_at(0, "not") {
            self.bump();
            self.unary().map(|e| Expr::Not(Box::new(e)))
        } else {
            self.primary()
        };
        self.depth -= 1;
        result
    }

    /// Counts one more filter term starting at `span`, failing past
    /// [`MAX_TERMS`]: hostile input gets an error naming the limit, not an
    /// unbounded predicate.
    fn count_term(&mut self, span: &Range<usize>) -> Result<(), ParseError> {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(ParseError::new(
                ErrorKind::Invalid,
                span.clone(),
                format!("the filter has more than {MAX_TERMS} terms"),
            )
            .with_suggestion(Some(
                "ask for many values of one field with `in (…)`, e.g. `tool_name in (a, b, c)`"
                    .into(),
            )));
        }
        Ok(())
    }

    /// `primary := "(" or_expr ")" | string | "exists" field
    ///           | "run" "has" "(" or_expr ")" | comparison`
    fn primary(&mut self) -> Result<Expr, ParseError> {
        let start = self.peek().span.clone();
        let run_has = self.word_at(0, "run") && self.word_at(1, "has");
        if matches!(self.peek().tok, Tok::Str(_) | Tok::Word(_)) && !run_has {
            self.count_term(&start)?;
        }
        match self.peek().tok.clone() {
            Tok::LParen => {
                self.bump();
                let inner = self.or_expr()?;
                if self.peek().tok != Tok::RParen {
                    return Err(self.unexpected("`)`").with_suggestion(Some(format!(
                        "to close the `(` at byte {}",
                        start.start
                    ))));
                }
                self.bump();
                Ok(inner)
            }
            Tok::Str(text) => {
                self.bump();
                check::check_expr(&Expr::Text(text.clone()), false).map_err(|p| p.at(start))?;
                Ok(Expr::Text(text))
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("or") || w.eq_ignore_ascii_case("and") => {
                let op = w.to_ascii_uppercase();
                Err(self.unexpected("a filter").with_suggestion(Some(format!(
                    "`{op}` joins two filters, e.g. `status=error {op} tool_name=payment`"
                ))))
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("exists") => {
                self.bump();
                Ok(Expr::Exists(self.field()?))
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("run") && self.word_at(1, "has") => {
                self.run_has()
            }
            Tok::Word(_) if self.at_time() => Err(ParseError::new(
                ErrorKind::Invalid,
                start,
                "a time range goes at the start or the end of the filter stage",
            )
            .with_suggestion(Some("e.g. `last 7d status=error`".into()))),
            Tok::Word(_) => self.comparison(),
            _ => Err(self.unexpected("a filter")),
        }
    }

    fn run_has(&mut self) -> Result<Expr, ParseError> {
        let start = self.bump().span.start;
        let has_end = self.bump().span.end;
        if self.source == Source::Logs {
            return Err(check::run_has_on_logs().at(start..has_end));
        }
        if self.in_run {
            return Err(check::nested_run_has().at(start..has_end));
        }
        self.expect(&Tok::LParen, "`(` after `run has`")?;
        self.in_run = true;
        let inner = self.or_expr();
        self.in_run = false;
        let inner = inner?;
        self.expect(&Tok::RParen, "`)` to close `run has (`")?;
        Ok(Expr::RunHas(Box::new(inner)))
    }

    /// `["key"]` after a map or JSON field: a non-empty quoted key.
    fn bracket_key(&mut self) -> Result<String, ParseError> {
        self.bump();
        let key_tok = self.peek().clone();
        let Tok::Str(key) = key_tok.tok else {
            return Err(self.unexpected("a quoted key"));
        };
        self.bump();
        self.expect(&Tok::RBracket, "`]`")?;
        if key.is_empty() {
            return Err(ParseError::new(
                ErrorKind::UnknownField,
                key_tok.span,
                "a map key cannot be empty",
            ));
        }
        Ok(key)
    }

    /// `comparison := field (cmp value | ["not"] "in" "(" values ")"
    ///                | ["not"] ("contains" | "icontains") text | "exists")`
    fn comparison(&mut self) -> Result<Expr, ParseError> {
        let field_start = self.peek().span.start;
        let field = self.field()?;
        let field_span = field_start..self.prev_end();
        let op = match self.peek().tok {
            Tok::Eq => Some(CmpOp::Eq),
            Tok::Ne => Some(CmpOp::Ne),
            Tok::Lt => Some(CmpOp::Lt),
            Tok::Le => Some(CmpOp::Le),
            Tok::Gt => Some(CmpOp::Gt),
            Tok::Ge => Some(CmpOp::Ge),
            _ => None,
        };
        if let Some(op) = op {
            self.bump();
            let (value, span) = self.value(&field)?;
            check::check_value(&field, &value).map_err(|p| p.at(span))?;
            return Ok(Expr::Compare { field, op, value });
        }
        let negated = self.word_at(0, "not")
            && ["in", "contains", "icontains", "exists"]
                .iter()
                .any(|kw| self.word_at(1, kw));
        if negated {
            self.bump();
        }
        let expr = if self.word_at(0, "exists") {
            self.bump();
            Expr::Exists(field)
        } else if self.word_at(0, "in") {
            self.bump();
            self.in_list(field)?
        } else if self.word_at(0, "contains") || self.word_at(0, "icontains") {
            let ignore_case = self.word_at(0, "icontains");
            let op = if ignore_case { "icontains" } else { "contains" };
            self.bump();
            check::check_contains(&field).map_err(|p| p.at(field_span))?;
            let (Tok::Str(value) | Tok::Word(value)) = self.peek().tok.clone() else {
                return Err(self.unexpected(&format!("the text to look for after `{op}`")));
            };
            self.bump();
            Expr::Contains {
                field,
                value,
                ignore_case,
            }
        } else {
            return Err(self
                .unexpected(&format!("an operator after `{field}`"))
                .with_suggestion(Some(
                "operators are = != < <= > >= in contains icontains exists, e.g. `status=error`"
                    .into(),
            )));
        };
        Ok(if negated {
            Expr::Not(Box::new(expr))
        } else {
            expr
        })
    }

    /// `"(" value ("," value)* ")"` after `in`.
    fn in_list(&mut self, field: Field) -> Result<Expr, ParseError> {
        self.expect(&Tok::LParen, "`(` after `in`")?;
        let mut values = Vec::new();
        if self.peek().tok == Tok::RParen {
            return Err(ParseError::new(
                ErrorKind::Invalid,
                self.peek().span.clone(),
                "`in` needs at least one value",
            ));
        }
        loop {
            let (value, span) = self.value(&field)?;
            check::check_value(&field, &value).map_err(|p| p.at(span.clone()))?;
            if values.len() == MAX_IN_VALUES {
                return Err(ParseError::new(
                    ErrorKind::Invalid,
                    span,
                    format!("an `in` list has more than {MAX_IN_VALUES} values"),
                ));
            }
            values.push(value);
            match self.peek().tok {
                Tok::Comma => {
                    self.bump();
                }
                Tok::RParen => {
                    self.bump();
                    return Ok(Expr::In { field, values });
                }
                _ => return Err(self.unexpected("`,` or `)`")),
            }
        }
    }

    /// A literal on the right of a comparison, read in the light of the
    /// field it is compared with: any bare word is text for a text field.
    fn value(&mut self, field: &Field) -> Result<(Value, Range<usize>), ParseError> {
        use super::field::FieldType as T;
        let tok = self.peek().clone();
        let value = match &tok.tok {
            Tok::Str(s) if field.ty() == T::Time => match parse_timestamp(s) {
                Some(ns) => Value::Time(super::values::Timestamp(ns)),
                None => Value::Str(s.clone()),
            },
            Tok::Str(s) => Value::Str(s.clone()),
            Tok::Word(w) if field.ty() == T::Text => Value::Str(w.clone()),
            Tok::Word(w) => match (classify(w), field.ty()) {
                (Literal::Int(n), _) => Value::Int(n),
                (Literal::Float(x), _) => Value::Float(x),
                (Literal::Duration(_) | Literal::Time(_) | Literal::Text, T::MapValue) => {
                    Value::Str(w.clone())
                }
                (Literal::Duration(ns), _) => Value::Duration(super::values::DurationNs(ns)),
                (Literal::Time(ns), _) => Value::Time(super::values::Timestamp(ns)),
                (Literal::Text, _) => Value::Str(w.clone()),
                (Literal::Malformed, T::MapValue) => Value::Str(w.clone()),
                (Literal::Malformed, _) => {
                    return Err(ParseError::syntax(
                        tok.span.clone(),
                        format!("`{w}` is not a valid number, duration or timestamp"),
                    )
                    .with_suggestion(Some(
                        "durations are whole ns with a unit (ns, us, ms, s, m, h, d), e.g. `1.5s`"
                            .into(),
                    )));
                }
            },
            _ => return Err(self.unexpected("a value")),
        };
        self.bump();
        Ok((value, tok.span))
    }

    /// `field := word | ("attributes" | "tags") "[" string "]"`
    pub(crate) fn field(&mut self) -> Result<Field, ParseError> {
        let tok = self.peek().clone();
        let Tok::Word(w) = &tok.tok else {
            return Err(self.unexpected("a field"));
        };
        self.bump();
        let map = match (w.as_str(), self.source) {
            ("attributes", _) => Some(Field::Attribute as fn(String) -> Field),
            ("tags", Source::Spans) => Some(Field::Tag as fn(String) -> Field),
            ("resource", Source::Logs) => Some(Field::Resource as fn(String) -> Field),
            _ => None,
        };
        if let Some(make) = map
            && self.peek().tok == Tok::LBracket
        {
            return Ok(make(self.bracket_key()?));
        }
        // `input["sys.query"]`, `output.items["0"]`: JSON keys in brackets,
        // after the column or a dotted path.
        if self.peek().tok == Tok::LBracket
            && self.source == Source::Spans
            && let Some(column) =
                super::field::JsonPath::column_named(w.split('.').next().unwrap_or_default())
        {
            let mut keys: Vec<String> = match Field::from_word(w) {
                Ok(Field::Json(path)) => path.keys,
                _ => Vec::new(),
            };
            while self.peek().tok == Tok::LBracket {
                keys.push(self.bracket_key()?);
            }
            return Ok(Field::Json(super::field::JsonPath { column, keys }));
        }
        Field::from_word_in(w, self.source).map_err(|p: Problem| p.at(tok.span))
    }
}
