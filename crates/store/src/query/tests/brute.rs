//! A [`Plan`] evaluated in plain Rust over a `Vec<Span>`: the reference
//! answer the DataFusion compilation must match.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use loupe_backend::plan::{
    AggKind, Aggregate, Cmp, FieldRef, Filter, GroupKey, Literal, Output, Plan, QueryResult,
    SortColumn,
};
use loupe_model::Span;
use serde_json::Value;

/// The expected answer: column names, and rows (listings: only `span_id`).
pub struct Want {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

/// The rows of a real result in the shape [`run`] gives.
pub fn project_rows(plan: &Plan, got: &QueryResult) -> Vec<Vec<Value>> {
    match plan.output {
        Output::Rows(_) => {
            let idx = got
                .columns
                .iter()
                .position(|c| c.name == "span_id")
                .expect("span_id column");
            got.rows.iter().map(|r| vec![r[idx].clone()]).collect()
        }
        Output::Aggregates => got.rows.clone(),
    }
}

fn field(s: &Span, f: &FieldRef) -> Value {
    let text = |v: &Option<String>| v.clone().map_or(Value::Null, Value::from);
    match f {
        // Spans stored unsigned are signed on read, as the pipeline would.
        FieldRef::Attribute(k)
            if k == loupe_model::ERROR_SIGNATURE && !s.attributes.contains_key(k) =>
        {
            let signed = (s.status == Some(loupe_model::Status::Error))
                .then(|| {
                    loupe_normalise::errors::sign(
                        s.error_message.as_deref(),
                        s.error_class.as_deref(),
                    )
                })
                .flatten();
            signed.map_or(Value::Null, |(_, sig)| Value::from(sig))
        }
        FieldRef::Attribute(k) => s
            .attributes
            .get(k)
            .cloned()
            .map_or(Value::Null, Value::from),
        FieldRef::Tag(k) => s.tags.get(k).cloned().map_or(Value::Null, Value::from),
        FieldRef::Json { column, keys } => {
            let text = if column == "input" {
                &s.input
            } else {
                &s.output
            };
            let mut at: Value = match text.as_deref().map(serde_json::from_str) {
                Some(Ok(v)) => v,
                _ => return Value::Null,
            };
            for k in keys {
                at = match at {
                    Value::Object(mut m) => m.remove(k).unwrap_or(Value::Null),
                    Value::Array(mut a) => match k.parse::<usize>() {
                        Ok(i) if i < a.len() => a.swap_remove(i),
                        _ => Value::Null,
                    },
                    _ => Value::Null,
                };
            }
            match at {
                Value::Null => Value::Null,
                Value::String(t) => Value::from(t),
                other => Value::from(other.to_string()),
            }
        }
        FieldRef::Column { name, .. } => match name.as_str() {
            "span_id" => Value::from(s.span_id.clone()),
            "trace_id" => text(&s.trace_id),
            "run_id" => text(&s.run_id),
            "user_id" => text(&s.user_id),
            "node_type" => text(&s.node_type),
            "name" => text(&s.name),
            "parent_span_id" => text(&s.parent_span_id),
            "app_name" => text(&s.app_name),
            "workflow_version" => text(&s.workflow_version),
            "model_provider" => text(&s.model_provider),
            "tool_name" => text(&s.tool_name),
            "error_message" => text(&s.error_message),
            "error_class" => text(&s.error_class),
            "input" => text(&s.input),
            "output" => text(&s.output),
            "model_name" => text(&s.model_name),
            "status" => s.status.map_or(Value::Null, |x| Value::from(x.as_str())),
            "span_kind" => s.span_kind.map_or(Value::Null, |x| Value::from(x.as_str())),
            "start_time" => s.start_time.map_or(Value::Null, Value::from),
            "end_time" => s.end_time.map_or(Value::Null, Value::from),
            "duration" => s.duration_ns().map_or(Value::Null, Value::from),
            "total_tokens" => s.total_tokens.map_or(Value::Null, Value::from),
            "cost" => s.cost.map_or(Value::Null, Value::from),
            other => panic!("brute force does not know column {other}"),
        },
    }
}

/// The field as a number (map text parsed; not a number → none).
fn number(s: &Span, f: &FieldRef) -> Option<f64> {
    match field(s, f) {
        Value::String(t) if f.is_map_value() => t.parse::<f64>().ok(),
        v => v.as_f64(),
    }
}

fn cmp_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        _ => match (a.as_i64(), b.as_i64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => a
                .as_f64()
                .zip(b.as_f64())
                .and_then(|(x, y)| x.partial_cmp(&y))
                .unwrap_or(Ordering::Equal),
        },
    }
}

/// Nulls last in both directions.
fn order(a: &Value, b: &Value, desc: bool) -> Ordering {
    match (a.is_null(), b.is_null()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ if desc => cmp_values(b, a),
        _ => cmp_values(a, b),
    }
}

fn compare(s: &Span, f: &FieldRef, op: Cmp, v: &Literal) -> bool {
    let ord = match v {
        Literal::Text(t) => match field(s, f) {
            Value::String(x) => x.as_bytes().cmp(t.as_bytes()),
            _ => return false,
        },
        Literal::Float(x) => match number(s, f).and_then(|y| y.partial_cmp(x)) {
            Some(o) => o,
            None => return false,
        },
        Literal::Int(x) | Literal::Duration(x) | Literal::Timestamp(x) => {
            match field(s, f).as_i64() {
                Some(y) => y.cmp(x),
                None => return false,
            }
        }
    };
    match op {
        Cmp::Eq => ord.is_eq(),
        Cmp::Ne => ord.is_ne(),
        Cmp::Lt => ord.is_lt(),
        Cmp::Le => ord.is_le(),
        Cmp::Gt => ord.is_gt(),
        Cmp::Ge => ord.is_ge(),
    }
}

fn run_key(s: &Span) -> Option<&str> {
    s.run_id.as_deref().or(s.trace_id.as_deref())
}

struct Eval<'a> {
    spans: Vec<&'a Span>,
    run_sets: RefCell<HashMap<usize, HashSet<String>>>,
}

impl Eval<'_> {
    fn matches(&self, s: &Span, f: &Filter) -> bool {
        match f {
            Filter::And(a) => a.iter().all(|x| self.matches(s, x)),
            Filter::Or(a) => a.iter().any(|x| self.matches(s, x)),
            Filter::Not(a) => !self.matches(s, a),
            Filter::Compare { field, op, value } => compare(s, field, *op, value),
            Filter::In { field, values } => values.iter().any(|v| compare(s, field, Cmp::Eq, v)),
            Filter::Contains {
                field: f,
                value,
                ignore_case: false,
            } => matches!(field(s, f), Value::String(x) if x.contains(value.as_str())),
            Filter::Contains {
                field: f,
                value,
                ignore_case: true,
            } => matches!(field(s, f), Value::String(x)
                if x.to_lowercase().contains(&value.to_lowercase())),
            Filter::Exists(f) => !field(s, f).is_null(),
            Filter::Text(text) => {
                let phrase = text.to_lowercase();
                phrase.trim().is_empty()
                    || [&s.input, &s.output, &s.error_message].iter().any(|t| {
                        t.as_deref()
                            .is_some_and(|t| t.to_lowercase().contains(&phrase))
                    })
            }
            Filter::RunHas(inner) => {
                let id = inner.as_ref() as *const Filter as usize;
                if !self.run_sets.borrow().contains_key(&id) {
                    let set = self
                        .spans
                        .iter()
                        .filter(|x| self.matches(x, inner))
                        .filter_map(|x| run_key(x).map(str::to_owned))
                        .collect();
                    self.run_sets.borrow_mut().insert(id, set);
                }
                run_key(s).is_some_and(|k| self.run_sets.borrow()[&id].contains(k))
            }
        }
    }
}

fn percentile(mut v: Vec<f64>, q: f64) -> Value {
    if v.is_empty() {
        return Value::Null;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let idx = q * (v.len() - 1) as f64;
    let (lo, hi) = (idx.floor() as usize, idx.ceil() as usize);
    Value::from(v[lo] + (v[hi] - v[lo]) * (idx - lo as f64))
}

fn aggregate(a: &Aggregate, group: &[&Span]) -> Value {
    let status = |s: &&&Span| s.status.map(|x| x.as_str());
    let nums = || -> Vec<f64> {
        let f = a.field.as_ref().expect("field");
        group.iter().filter_map(|s| number(s, f)).collect()
    };
    let ints = || -> Option<Vec<i64>> {
        let f = a.field.as_ref().expect("field");
        if f.is_map_value() || matches!(f.ty(), loupe_backend::plan::ValueType::Float) {
            return None;
        }
        Some(group.iter().filter_map(|s| field(s, f).as_i64()).collect())
    };
    match a.kind {
        AggKind::Count => Value::from(group.len() as i64),
        AggKind::ErrorRate => {
            let e = group.iter().filter(|s| status(s) == Some("error")).count();
            Value::from(e as f64 / group.len() as f64)
        }
        AggKind::SuccessRate => {
            let ok = group.iter().filter(|s| status(s) == Some("ok")).count();
            let done = group
                .iter()
                .filter(|s| matches!(status(s), Some("ok" | "error")))
                .count();
            if done == 0 {
                Value::Null
            } else {
                Value::from(ok as f64 / done as f64)
            }
        }
        AggKind::Avg => {
            let v = nums();
            if v.is_empty() {
                Value::Null
            } else {
                Value::from(v.iter().sum::<f64>() / v.len() as f64)
            }
        }
        AggKind::Min | AggKind::Max | AggKind::Sum => {
            let pick = |v: Vec<Value>| match a.kind {
                AggKind::Min => v.into_iter().min_by(cmp_values),
                AggKind::Max => v.into_iter().max_by(cmp_values),
                _ => None,
            };
            match (a.kind, ints()) {
                (AggKind::Sum, Some(v)) if !v.is_empty() => Value::from(v.iter().sum::<i64>()),
                (AggKind::Sum, None) if !nums().is_empty() => {
                    Value::from(nums().iter().sum::<f64>())
                }
                (AggKind::Sum, _) => Value::Null,
                (_, Some(v)) => {
                    pick(v.into_iter().map(Value::from).collect()).unwrap_or(Value::Null)
                }
                (_, None) => {
                    pick(nums().into_iter().map(Value::from).collect()).unwrap_or(Value::Null)
                }
            }
        }
        AggKind::Percentile(q) => percentile(nums(), q),
        AggKind::CountDistinct => {
            let f = a.field.as_ref().expect("field");
            let set: HashSet<String> = group
                .iter()
                .map(|s| field(s, f))
                .filter(|v| !v.is_null())
                .map(|v| v.to_string())
                .collect();
            Value::from(set.len() as i64)
        }
    }
}

fn group_value(s: &Span, k: &GroupKey) -> Value {
    match k {
        GroupKey::Field(f) => field(s, f),
        GroupKey::Bucket { width_ns } => s.start_time.map_or(Value::Null, |t| {
            Value::from(t.div_euclid(*width_ns) * width_ns)
        }),
    }
}

/// Evaluates the plan.
pub fn run(plan: &Plan, all: &[Span]) -> Want {
    let in_range: Vec<&Span> = all
        .iter()
        .filter(|s| {
            s.start_time
                .is_some_and(|t| t >= plan.from_ns && t < plan.to_ns)
        })
        .collect();
    let eval = Eval {
        spans: in_range.clone(),
        run_sets: RefCell::new(HashMap::new()),
    };
    let matching: Vec<&Span> = in_range
        .iter()
        .copied()
        .filter(|s| plan.filter.as_ref().is_none_or(|f| eval.matches(s, f)))
        .collect();
    let limit = plan.limit.map_or(usize::MAX, |n| n as usize);
    match &plan.output {
        Output::Rows(fields) => {
            let mut rows = matching;
            rows.sort_by(|a, b| {
                for k in &plan.sort {
                    let SortColumn::Field(f) = &k.column else {
                        panic!("listing sorts by fields")
                    };
                    let o = order(&field(a, f), &field(b, f), k.descending);
                    if o.is_ne() {
                        return o;
                    }
                }
                a.span_id.cmp(&b.span_id)
            });
            Want {
                columns: fields.iter().map(FieldRef::output_name).collect(),
                rows: rows
                    .into_iter()
                    .take(limit)
                    .map(|s| vec![Value::from(s.span_id.clone())])
                    .collect(),
            }
        }
        Output::Aggregates => {
            let mut groups: HashMap<String, (Vec<Value>, Vec<&Span>)> = HashMap::new();
            for s in &matching {
                let key: Vec<Value> = plan.group_by.iter().map(|k| group_value(s, k)).collect();
                let entry = groups
                    .entry(serde_json::to_string(&key).expect("json"))
                    .or_insert_with(|| (key, Vec::new()));
                entry.1.push(s);
            }
            if plan.group_by.is_empty() && groups.is_empty() {
                groups.insert(String::new(), (Vec::new(), Vec::new()));
            }
            let mut columns: Vec<String> = plan.group_by.iter().map(|k| k.output_name()).collect();
            columns.extend(plan.aggregates.iter().map(|a| a.name.clone()));
            let mut rows: Vec<Vec<Value>> = groups
                .into_values()
                .map(|(mut key, spans)| {
                    key.extend(plan.aggregates.iter().map(|a| {
                        if spans.is_empty() && a.kind == AggKind::Count {
                            Value::from(0)
                        } else if spans.is_empty() {
                            Value::Null
                        } else {
                            aggregate(a, &spans)
                        }
                    }));
                    key
                })
                .collect();
            let idx = |name: &str| columns.iter().position(|c| c == name).expect("sort column");
            rows.sort_by(|a, b| {
                for k in &plan.sort {
                    let i = match &k.column {
                        SortColumn::Output(n) => idx(n),
                        SortColumn::Field(f) => idx(&f.output_name()),
                    };
                    let o = order(&a[i], &b[i], k.descending);
                    if o.is_ne() {
                        return o;
                    }
                }
                for i in 0..plan.group_by.len() {
                    let o = order(&a[i], &b[i], false);
                    if o.is_ne() {
                        return o;
                    }
                }
                Ordering::Equal
            });
            rows.truncate(limit);
            Want { columns, rows }
        }
    }
}
