//! The pipeline grammar: `filter | by … | aggregates | sort … | limit N |
//! fields …`, and the time range inside the filter stage.
//!
//! Each stage is recognised by its first tokens: `by`, `sort`,
//! `limit`/`top` + number, `fields` + field, a function call (aggregates);
//! anything else is the filter. Stages must come in that order, each at
//! most once.

use super::super::ast::{
    AggCall, AggFunc, Aggregate, GroupKey, Limit, Order, Query, SortBy, SortKey, Source, TimeRange,
};
use super::super::check;
use super::super::error::{ErrorKind, ParseError, did_you_mean};
use super::super::field::Field;
use super::super::lexer::Tok;
use super::super::values::{DurationNs, Timestamp, parse_duration, parse_timestamp};
use super::Parser;

/// Pipeline stages, in the order they must appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Filter,
    By,
    Aggregates,
    Sort,
    Limit,
    Fields,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::Filter => "filter",
            Stage::By => "`by`",
            Stage::Aggregates => "aggregates",
            Stage::Sort => "`sort`",
            Stage::Limit => "`limit`",
            Stage::Fields => "`fields`",
        }
    }
}

/// Names people type for aggregates, mapped to the real one (suggestions
/// only).
const AGG_SYNONYMS: &[(&str, &str)] = &[
    ("mean", "avg"),
    ("average", "avg"),
    ("median", "p50"),
    ("distinct", "count_distinct"),
    ("uniq", "count_distinct"),
    ("cardinality", "count_distinct"),
    ("total", "sum"),
    ("failure_rate", "error_rate"),
];

impl Parser {
    /// `query := [filter_stage] ("|" stage)*` with stages in order.
    pub(super) fn query(&mut self) -> Result<Query, ParseError> {
        let mut q = Query::default();
        let mut last: Option<Stage> = None;
        self.source_prefix(&mut q)?;
        if self.peek().tok == Tok::Eof {
            return Ok(q);
        }
        loop {
            let start = self.peek().span.clone();
            let stage = self.stage_kind();
            if let Some(prev) = last
                && stage <= prev
            {
                let message = if stage == prev {
                    format!("a second {} stage", stage.name())
                } else {
                    format!(
                        "a {} stage cannot follow the {} stage",
                        stage.name(),
                        prev.name()
                    )
                };
                let hint = match stage {
                    Stage::Filter => "put every filter in the first stage".to_string(),
                    _ => "stages go in this order: filter | by … | aggregates | sort … | limit N \
                          | fields …"
                        .to_string(),
                };
                return Err(
                    ParseError::new(ErrorKind::Invalid, start, message).with_suggestion(Some(hint))
                );
            }
            match stage {
                Stage::Filter => self.filter_stage(&mut q)?,
                Stage::By => self.by_stage(&mut q)?,
                Stage::Aggregates => self.aggregate_stage(&mut q)?,
                Stage::Sort => self.sort_stage(&mut q)?,
                Stage::Limit => self.limit_stage(&mut q)?,
                Stage::Fields => self.fields_stage(&mut q)?,
            }
            last = Some(stage);
            match self.peek().tok {
                Tok::Eof => return Ok(q),
                Tok::Pipe => {
                    self.bump();
                    if matches!(self.peek().tok, Tok::Eof | Tok::Pipe) {
                        return Err(self.unexpected("a stage after `|`"));
                    }
                }
                _ => return Err(self.unexpected("`|` or the end of the query")),
            }
        }
    }

    /// `source := ("logs" | "spans") ("|" | end)`: which table the query
    /// reads; without it, spans. Only a word followed by `|` or the end is
    /// a source, so no span filter is taken for one.
    fn source_prefix(&mut self, q: &mut Query) -> Result<(), ParseError> {
        let source = if self.word_at(0, "logs") {
            Source::Logs
        } else if self.word_at(0, "spans") {
            Source::Spans
        } else {
            return Ok(());
        };
        match self.peek_at(1).tok {
            Tok::Pipe | Tok::Eof => {}
            _ => {
                self.bump();
                return Err(self
                    .unexpected("`|` after the source")
                    .with_suggestion(Some(format!("write `{} | <filter>`", source.as_str()))));
            }
        }
        self.bump();
        self.source = source;
        q.source = source;
        if self.peek().tok == Tok::Pipe {
            self.bump();
            if matches!(self.peek().tok, Tok::Eof | Tok::Pipe) {
                return Err(self.unexpected("a stage after `|`"));
            }
        }
        Ok(())
    }

    fn stage_kind(&self) -> Stage {
        let next_is_word = self.is_word_at(1);
        // `name(` starts the aggregates, and so does a bare aggregate name
        // (`count`), so that the error asks for the parentheses.
        let call = matches!(&self.peek().tok, Tok::Word(w)
            if (self.peek_at(1).tok == Tok::LParen
                && !["not", "has", "exists", "in"].iter().any(|k| w.eq_ignore_ascii_case(k)))
                || (AggFunc::from_name(w).is_some() && Field::from_word_in(w, self.source).is_err()));
        if self.word_at(0, "by") && next_is_word {
            Stage::By
        } else if self.word_at(0, "sort") && next_is_word {
            Stage::Sort
        } else if (self.word_at(0, "limit") || self.word_at(0, "top")) && next_is_word {
            Stage::Limit
        } else if self.word_at(0, "fields") && next_is_word {
            Stage::Fields
        } else if call {
            Stage::Aggregates
        } else {
            Stage::Filter
        }
    }

    /// `filter_stage := [time] [or_expr] [time]` (one time range at most).
    fn filter_stage(&mut self, q: &mut Query) -> Result<(), ParseError> {
        q.time = self.time_range()?;
        if !self.at_stage_end() && !self.at_time() {
            q.filter = Some(self.or_expr()?);
        }
        while self.at_time() {
            let span = self.peek().span.clone();
            if q.time.is_some() {
                return Err(ParseError::new(
                    ErrorKind::Invalid,
                    span,
                    "a second time range",
                ));
            }
            q.time = self.time_range()?;
        }
        if !self.at_stage_end() {
            return Err(self.unexpected("a filter, `|` or the end of the query"));
        }
        Ok(())
    }

    /// `time := "last" duration | "from" timestamp "to" timestamp`
    fn time_range(&mut self) -> Result<Option<TimeRange>, ParseError> {
        if !self.at_time() {
            return Ok(None);
        }
        let start = self.peek().span.start;
        let range = if self.word_at(0, "last") {
            self.bump();
            TimeRange::Last {
                last: self.duration("a duration after `last`, e.g. `7d`")?,
            }
        } else {
            self.bump();
            let from = self.timestamp()?;
            if !self.word_at(0, "to") {
                return Err(self.unexpected("`to`").with_suggestion(Some(
                    "write `from 2026-11-01T00:00:00Z to 2026-11-02T00:00:00Z`".into(),
                )));
            }
            self.bump();
            let to = self.timestamp()?;
            TimeRange::Between { from, to }
        };
        check::check_time(&range).map_err(|p| p.at(start..self.prev_end()))?;
        Ok(Some(range))
    }

    fn duration(&mut self, expected: &str) -> Result<DurationNs, ParseError> {
        let tok = self.peek().clone();
        let Tok::Word(w) = &tok.tok else {
            return Err(self.unexpected(expected));
        };
        let Some(ns) = parse_duration(w) else {
            let hint = match w.parse::<i64>() {
                Ok(n) => format!("did you mean `{n}s`? (units: ns, us, ms, s, m, h, d)"),
                Err(_) => "a duration is a number with a unit: ns, us, ms, s, m, h, d".into(),
            };
            return Err(ParseError::new(
                ErrorKind::Type,
                tok.span,
                format!("`{w}` is not a duration"),
            )
            .with_suggestion(Some(hint)));
        };
        self.bump();
        Ok(DurationNs(ns))
    }

    fn timestamp(&mut self) -> Result<Timestamp, ParseError> {
        let tok = self.peek().clone();
        let (Tok::Word(w) | Tok::Str(w)) = &tok.tok else {
            return Err(self.unexpected("a timestamp"));
        };
        let Some(ns) = parse_timestamp(w) else {
            return Err(ParseError::new(
                ErrorKind::Type,
                tok.span,
                format!("`{w}` is not a timestamp"),
            )
            .with_suggestion(Some("write RFC 3339, e.g. `2026-11-01T00:00:00Z`".into())));
        };
        self.bump();
        Ok(Timestamp(ns))
    }

    /// `by_stage := "by" group_key ("," group_key)*`
    fn by_stage(&mut self, q: &mut Query) -> Result<(), ParseError> {
        self.bump();
        loop {
            let start = self.peek().span.start;
            let key = if self.word_at(0, "bucket") && self.peek_at(1).tok == Tok::LParen {
                self.bump();
                self.bump();
                let width = self.duration("a bucket width, e.g. `1h`")?;
                self.expect(&Tok::RParen, "`)`")?;
                check::check_bucket(width.0).map_err(|p| p.at(start..self.prev_end()))?;
                GroupKey::Bucket { bucket: width }
            } else {
                GroupKey::Field(self.field()?)
            };
            if q.group_by.contains(&key) {
                return Err(ParseError::new(
                    ErrorKind::Invalid,
                    start..self.prev_end(),
                    format!("`{key}` is already a group key"),
                ));
            }
            q.group_by.push(key);
            if !self.comma() {
                return Ok(());
            }
        }
    }

    fn comma(&mut self) -> bool {
        let yes = self.peek().tok == Tok::Comma;
        if yes {
            self.bump();
        }
        yes
    }

    /// `aggregate_stage := aggregate ("," aggregate)*`,
    /// `aggregate := name "(" [field] ")" ["as" alias]`
    fn aggregate_stage(&mut self, q: &mut Query) -> Result<(), ParseError> {
        loop {
            let call = self.agg_call()?;
            let mut alias = None;
            if self.word_at(0, "as") {
                self.bump();
                let tok = self.peek().clone();
                let Tok::Word(name) = tok.tok else {
                    return Err(self.unexpected("an alias after `as`"));
                };
                check::check_alias(&name)
                    .and_then(|()| check::check_alias_unique(&q.aggregates, &name))
                    .map_err(|p| p.at(tok.span))?;
                self.bump();
                alias = Some(name);
            }
            q.aggregates.push(Aggregate {
                func: call.func,
                field: call.field,
                alias,
            });
            if !self.comma() {
                return Ok(());
            }
        }
    }

    /// `name "(" [field] ")"`, type-checked.
    fn agg_call(&mut self) -> Result<AggCall, ParseError> {
        let tok = self.peek().clone();
        let Tok::Word(name) = &tok.tok else {
            return Err(self.unexpected("an aggregate such as `count()`"));
        };
        let Some(func) = AggFunc::from_name(name) else {
            let lower = name.to_ascii_lowercase();
            let hint = AGG_SYNONYMS
                .iter()
                .find(|(s, _)| *s == lower)
                .map(|(_, real)| format!("did you mean `{real}`?"))
                .or_else(|| did_you_mean(name, AggFunc::ALL.iter().map(|f| f.as_str())));
            return Err(ParseError::new(
                ErrorKind::UnknownAggregate,
                tok.span,
                format!("unknown aggregate `{name}`"),
            )
            .with_suggestion(hint));
        };
        self.bump();
        if self.peek().tok != Tok::LParen {
            return Err(self
                .unexpected(&format!("`(` after `{name}`"))
                .with_suggestion(Some(format!("write `{}()`", func.as_str()))));
        }
        self.bump();
        let field = match self.peek().tok {
            Tok::RParen => None,
            _ => Some(self.field()?),
        };
        self.expect(&Tok::RParen, "`)`")?;
        check::check_aggregate(self.source, func, field.as_ref())
            .map_err(|p| p.at(tok.span.start..self.prev_end()))?;
        Ok(AggCall { func, field })
    }

    /// `sort_stage := "sort" sort_by ["asc" | "desc"] ("," …)*`
    fn sort_stage(&mut self, q: &mut Query) -> Result<(), ParseError> {
        self.bump();
        loop {
            let start = self.peek().span.start;
            let by = self.sort_by()?;
            check::check_sort(q, &by).map_err(|p| p.at(start..self.prev_end()))?;
            let order = if self.word_at(0, "desc") {
                self.bump();
                Order::Desc
            } else {
                if self.word_at(0, "asc") {
                    self.bump();
                }
                Order::Asc
            };
            q.sort.push(SortKey { by, order });
            if !self.comma() {
                return Ok(());
            }
        }
    }

    /// `sort_by := aggregate_call | field | alias`
    pub(super) fn sort_by(&mut self) -> Result<SortBy, ParseError> {
        let tok = self.peek().clone();
        let Tok::Word(w) = &tok.tok else {
            return Err(self.unexpected("a sort key"));
        };
        if self.peek_at(1).tok == Tok::LParen {
            return Ok(SortBy::Aggregate(self.agg_call()?));
        }
        let map_bracket = (w == "tags" || w == "attributes" || w == "resource")
            && self.peek_at(1).tok == Tok::LBracket;
        if map_bracket || Field::from_word_in(w, self.source).is_ok() {
            return Ok(SortBy::Field(self.field()?));
        }
        if check::check_alias(w).is_ok() {
            self.bump();
            return Ok(SortBy::Alias(w.clone()));
        }
        // Neither a field nor a possible alias: report it as a field.
        Err(self
            .field()
            .err()
            .unwrap_or_else(|| self.unexpected("a sort key")))
    }

    /// `limit_stage := ("limit" | "top") integer`
    fn limit_stage(&mut self, q: &mut Query) -> Result<(), ParseError> {
        let top = self.word_at(0, "top");
        self.bump();
        let tok = self.peek().clone();
        let n = match &tok.tok {
            Tok::Word(w) => w.parse::<u64>().ok(),
            _ => None,
        };
        let Some(n) = n else {
            return Err(self.unexpected("a whole number"));
        };
        check::check_limit(n).map_err(|p| p.at(tok.span.clone()))?;
        self.bump();
        q.limit = Some(if top {
            Limit::Top { top: n }
        } else {
            Limit::Rows(n)
        });
        Ok(())
    }

    /// `fields_stage := "fields" field ("," field)*`: a listing's columns.
    fn fields_stage(&mut self, q: &mut Query) -> Result<(), ParseError> {
        let stage = self.peek().span.start;
        self.bump();
        check::check_fields_allowed(q).map_err(|p| p.at(stage..self.prev_end()))?;
        loop {
            let start = self.peek().span.start;
            let field = self.field()?;
            check::check_field_new(&q.fields, &field).map_err(|p| p.at(start..self.prev_end()))?;
            q.fields.push(field);
            if !self.comma() {
                return Ok(());
            }
        }
    }
}
