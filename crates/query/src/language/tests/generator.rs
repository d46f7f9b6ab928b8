//! A tiny deterministic generator of valid queries, and the round-trip
//! property over them: `parse(display(q)) == q`, `from_json(json(q)) == q`,
//! and canonical text is a fixed point.
//!
//! The generator is a xorshift PRNG with a fixed seed, so a failure is
//! reproducible by its case number. It draws from awkward pools on purpose:
//! strings that need quotes or escapes, keyword-like words, map keys with
//! dots and spaces, negative and fractional numbers.

use crate::language::{
    AggFunc, Aggregate, CmpOp, Column, DurationNs, Expr, Field, FieldType, GroupKey, Limit, Order,
    Query, SortBy, SortKey, TimeRange, Timestamp, Value,
};

/// xorshift64*: small, deterministic, good enough for test inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const STRINGS: &[&str] = &[
    "inventory",
    "payment",
    "a b",
    "",
    "and",
    "OR",
    "desc",
    "123",
    "1s",
    "-5",
    "say \"hi\"",
    "back\\slash",
    "tab\there",
    "line\nbreak",
    "été",
    "日本",
    "http:500",
    "a.b-c_d",
    "2026-11-01",
    "(paren)",
    "pipe|bar",
    "\u{7}bell",
];

const KEYS: &[&str] = &[
    "category",
    "http.status_code",
    "user-tier",
    "key with spaces",
    "a:b",
    "quote\"d",
    "1",
    "x.y.z",
    "in",
];

const FLOATS: &[f64] = &[0.5, -2.25, 1e20, 3.0, 1e-7, 123.456, -0.125];

const ALIASES: &[&str] = &["slow", "n", "p95_lat", "errs", "total_cost", "count", "x_1"];

fn field(rng: &mut Rng) -> Field {
    match rng.below(5) {
        0 => Field::Attribute((*rng.pick(KEYS)).to_string()),
        1 => Field::Tag((*rng.pick(KEYS)).to_string()),
        2 => Field::Json(crate::language::field::JsonPath {
            column: if rng.below(2) == 0 { "input" } else { "output" },
            keys: (0..1 + rng.below(3))
                .map(|_| (*rng.pick(KEYS)).to_string())
                .collect(),
        }),
        _ => Field::Column(*rng.pick(Column::all())),
    }
}

fn string_value(rng: &mut Rng, field: &Field) -> String {
    match field {
        Field::Column(col) => match col.allowed_values() {
            Some(values) => (*rng.pick(&values)).to_string(),
            None => (*rng.pick(STRINGS)).to_string(),
        },
        _ => (*rng.pick(STRINGS)).to_string(),
    }
}

/// A value that type-checks against `field`.
fn value(rng: &mut Rng, field: &Field) -> Value {
    match field.ty() {
        FieldType::Text => Value::Str(string_value(rng, field)),
        FieldType::Int => Value::Int(rng.next() as i64 % 100_000),
        FieldType::Float => match rng.below(2) {
            0 => Value::Int(rng.next() as i64 % 1000),
            _ => Value::Float(*rng.pick(FLOATS)),
        },
        FieldType::Duration => Value::Duration(duration(rng, true)),
        FieldType::Time => Value::Time(timestamp(rng)),
        _ => match rng.below(3) {
            0 => Value::Int(rng.next() as i64 % 1000 - 500),
            1 => Value::Float(*rng.pick(FLOATS)),
            _ => Value::Str(string_value(rng, field)),
        },
    }
}

fn duration(rng: &mut Rng, allow_non_positive: bool) -> DurationNs {
    let units = [
        1,
        1_000,
        1_000_000,
        1_000_000_000,
        60_000_000_000,
        3_600_000_000_000,
    ];
    let n = rng.next() as i64 % 5_000;
    let n = if allow_non_positive { n } else { n.abs() + 1 };
    DurationNs(n * *rng.pick(&units))
}

fn timestamp(rng: &mut Rng) -> Timestamp {
    // 1970 .. ~2100, sometimes with sub-second parts.
    let secs = (rng.next() % 4_100_000_000) as i64;
    let frac = [0, 500_000_000, 123_000, 7][rng.below(4)];
    Timestamp(secs * 1_000_000_000 + frac)
}

fn expr(rng: &mut Rng, depth: u32, in_run: bool) -> Expr {
    let leaf = depth == 0 || rng.chance(40);
    if !leaf {
        return match rng.below(if in_run { 3 } else { 4 }) {
            0 => Expr::And(
                (0..2 + rng.below(2))
                    .map(|_| expr(rng, depth - 1, in_run))
                    .collect(),
            ),
            1 => Expr::Or(
                (0..2 + rng.below(2))
                    .map(|_| expr(rng, depth - 1, in_run))
                    .collect(),
            ),
            2 => Expr::Not(Box::new(expr(rng, depth - 1, in_run))),
            _ => Expr::RunHas(Box::new(expr(rng, depth - 1, true))),
        };
    }
    let f = field(rng);
    match rng.below(6) {
        0 | 1 => {
            let op = *rng.pick(&[
                CmpOp::Eq,
                CmpOp::Ne,
                CmpOp::Lt,
                CmpOp::Le,
                CmpOp::Gt,
                CmpOp::Ge,
            ]);
            let value = value(rng, &f);
            Expr::Compare {
                field: f,
                op,
                value,
            }
        }
        2 => {
            let values = (0..1 + rng.below(3)).map(|_| value(rng, &f)).collect();
            Expr::In { field: f, values }
        }
        3 if matches!(f.ty(), FieldType::Text | FieldType::MapValue) => Expr::Contains {
            value: (*rng.pick(STRINGS)).to_string(),
            field: f,
            ignore_case: rng.below(2) == 0,
        },
        4 => Expr::Text((*rng.pick(&["timeout", "connection reset", "HTTP 500", "\"q\""])).into()),
        _ => Expr::Exists(f),
    }
}

fn aggregates(rng: &mut Rng) -> Vec<Aggregate> {
    let mut out: Vec<Aggregate> = Vec::new();
    for _ in 0..rng.below(4) {
        let func = *rng.pick(AggFunc::ALL);
        let field = if !func.takes_field() {
            None
        } else {
            let candidates: Vec<Field> = (0..20)
                .map(|_| field(rng))
                .filter(|f| {
                    crate::language::check::check_aggregate(
                        crate::language::Source::Spans,
                        func,
                        Some(f),
                    )
                    .is_ok()
                })
                .collect();
            match candidates.first() {
                Some(f) => Some(f.clone()),
                None => continue,
            }
        };
        let alias = rng
            .chance(40)
            .then(|| (*rng.pick(ALIASES)).to_string())
            .filter(|a| out.iter().all(|o| o.alias.as_deref() != Some(a)));
        out.push(Aggregate { func, field, alias });
    }
    out
}

fn sort_keys(rng: &mut Rng, q: &Query) -> Vec<SortKey> {
    let mut targets: Vec<SortBy> = Vec::new();
    if q.is_aggregating() {
        for a in &q.aggregates {
            targets.push(SortBy::Aggregate(a.call()));
            if let Some(alias) = &a.alias {
                targets.push(SortBy::Alias(alias.clone()));
            }
        }
        for k in &q.group_by {
            if let GroupKey::Field(f) = k {
                targets.push(SortBy::Field(f.clone()));
            }
        }
    } else {
        targets.extend((0..3).map(|_| SortBy::Field(field(rng))));
    }
    if targets.is_empty() {
        return Vec::new();
    }
    (0..rng.below(3))
        .map(|_| SortKey {
            by: rng.pick(&targets).clone(),
            order: *rng.pick(&[Order::Asc, Order::Desc]),
        })
        .collect()
}

/// One valid query.
fn query(rng: &mut Rng) -> Query {
    let mut q = Query {
        time: match rng.below(3) {
            0 => None,
            1 => Some(TimeRange::Last {
                last: duration(rng, false),
            }),
            _ => {
                let from = timestamp(rng);
                let to = Timestamp(from.0 + duration(rng, false).0);
                Some(TimeRange::Between { from, to })
            }
        },
        filter: rng.chance(80).then(|| expr(rng, 3, false)),
        ..Query::default()
    };
    for _ in 0..rng.below(3) {
        let key = if rng.chance(30) {
            GroupKey::Bucket {
                bucket: duration(rng, false),
            }
        } else {
            GroupKey::Field(field(rng))
        };
        if !q.group_by.contains(&key) {
            q.group_by.push(key);
        }
    }
    q.aggregates = aggregates(rng);
    q.sort = sort_keys(rng, &q);
    q.limit = match rng.below(3) {
        0 => None,
        1 => Some(Limit::Rows(1 + rng.next() % 1000)),
        _ => Some(Limit::Top {
            top: 1 + rng.next() % 50,
        }),
    };
    if !q.is_aggregating() && rng.chance(30) {
        for _ in 0..1 + rng.below(4) {
            let f = field(rng);
            if !q.fields.contains(&f) {
                q.fields.push(f);
            }
        }
    }
    q
}

#[test]
fn generated_queries_survive_display_parse_and_json_round_trips() {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    for case in 0..3000 {
        let q = query(&mut rng);
        if let Err(e) = q.validate() {
            panic!("case {case}: generator made an invalid query {q:?}: {e}");
        }
        let text = q.to_string();
        let parsed = match Query::parse(&text) {
            Ok(p) => p,
            Err(e) => panic!("case {case}: {q:?}\n{}", e.render(&text)),
        };
        assert_eq!(parsed, q, "case {case}: parse(display(q)) != q\n{text}");
        assert_eq!(
            parsed.to_string(),
            text,
            "case {case}: display is not canonical"
        );
        let json = serde_json::to_string(&q).unwrap();
        let back = Query::from_json(&json).unwrap_or_else(|e| panic!("case {case}: {json}: {e}"));
        assert_eq!(back, q, "case {case}: JSON round trip\n{json}");
    }
}

#[test]
fn generator_reaches_every_construct() {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let texts: Vec<String> = (0..3000).map(|_| query(&mut rng).to_string()).collect();
    let all = texts.join("\n");
    for needle in [
        " OR ",
        "NOT ",
        "run has (",
        " in (",
        " contains ",
        "exists ",
        "last ",
        "from ",
        "by ",
        "bucket(",
        " as ",
        "sort ",
        " desc",
        "limit ",
        "top ",
        "tags[",
        "attributes.",
        "\\\"",
        "\\n",
        "\\u{7}",
        "(",
        "count_distinct(",
        "p99(",
    ] {
        assert!(
            all.contains(needle),
            "no generated query contains {needle:?}"
        );
    }
}
