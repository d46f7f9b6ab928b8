//! A [`Span`] as a stored row: encoded as one `JSONEachRow` line for an
//! insert, decoded from the cells of a `JSONCompact` answer.

use loupe_model::{Span, SpanKind, Status, Tags};
use serde_json::{Map, Value};

use crate::Error;
use crate::schema::{Layout, MAPS, Profile};

/// A span as stored: the merged span, when it was first filed (seconds)
/// and its row version.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub span: Span,
    pub filed_at: i64,
    pub version: u64,
}

/// The select list that [`decode`] reads, in order.
pub(crate) fn select_list(layout: &Layout) -> String {
    items(layout, true).join(", ")
}

/// What [`decode`] reads, in order; the payloads unset without `payloads`.
fn items(layout: &Layout, payloads: bool) -> Vec<String> {
    let mut out: Vec<String> = SCALARS
        .iter()
        .map(|s| match *s {
            "input" | "output" if !payloads => "CAST(NULL AS Nullable(String))".to_owned(),
            other => other.to_owned(),
        })
        .collect();
    out.push("toInt64(filed_at)".into());
    out.push("_version".into());
    for m in MAPS {
        let (k, v) = layout.map_arrays(m);
        out.push(k);
        out.push(v);
    }
    out
}

/// [`select_list`] without the payloads (`input`, `output`) and maps,
/// which come back unset: what run summaries read.
pub(crate) fn light_select_list() -> String {
    let mut out: Vec<String> = SCALARS
        .iter()
        .map(|s| match *s {
            "input" | "output" => format!("CAST(NULL AS Nullable(String)) AS __no_{s}"),
            other => other.to_owned(),
        })
        .collect();
    out.push("toInt64(filed_at)".into());
    out.push("_version".into());
    for m in MAPS {
        out.push(format!("emptyArrayString() AS __no_{m}_keys"));
        out.push(format!("emptyArrayString() AS __no_{m}_values"));
    }
    out.join(", ")
}

/// [`select_list`]'s items without the payloads (`input` and `output`
/// come back unset), each named `cN` by its position: what a row-by-row
/// read (`JSONEachRow`, whose objects are keyed by name) selects to hand
/// [`decode`] its cells in order.
pub(crate) fn named_items_without_payloads(layout: &Layout) -> Vec<String> {
    items(layout, false)
        .into_iter()
        .enumerate()
        .map(|(i, item)| format!("{item} AS c{i}"))
        .collect()
}

/// Text and number columns of a span, in the order [`decode`] reads them.
const SCALARS: &[&str] = &[
    "project",
    "span_id",
    "trace_id",
    "parent_span_id",
    "run_id",
    "session_id",
    "user_id",
    "app_id",
    "app_name",
    "workflow_id",
    "workflow_version",
    "span_kind",
    "node_type",
    "name",
    "status",
    "raw_status",
    "error_message",
    "error_class",
    "start_time",
    "end_time",
    "model_name",
    "model_provider",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cost",
    "currency",
    "tool_name",
    "input",
    "output",
    "source",
    "ingest_version",
];

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn int(v: &Value) -> Result<Option<i64>, Error> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| Error::Decode(format!("{n} is not an Int64"))),
        Value::String(s) => s
            .parse()
            .map(Some)
            .map_err(|_| Error::Decode(format!("{s:?} is not an Int64"))),
        other => Err(Error::Decode(format!("{other} is not an Int64"))),
    }
}

fn float(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn strings(v: &Value) -> Result<Vec<String>, Error> {
    match v {
        Value::Array(a) => Ok(a.iter().filter_map(text).collect()),
        Value::Null => Ok(Vec::new()),
        other => Err(Error::Decode(format!("{other} is not an array"))),
    }
}

/// Builds a map from its keys and values arrays.
pub(crate) fn zip_map(keys: &Value, values: &Value) -> Result<Tags, Error> {
    let (k, v) = (strings(keys)?, strings(values)?);
    if k.len() != v.len() {
        return Err(Error::Decode("map keys and values differ in length".into()));
    }
    Ok(k.into_iter().zip(v).collect())
}

/// Decodes one row of [`select_list`].
pub(crate) fn decode(row: &[Value]) -> Result<Stored, Error> {
    let expected = SCALARS.len() + 2 + 2 * MAPS.len();
    if row.len() != expected {
        return Err(Error::Decode(format!(
            "a span row has {} cells, not {expected}",
            row.len()
        )));
    }
    let t = |i: usize| text(&row[i]);
    let mut s = Span::new(t(0).unwrap_or_default(), t(1).unwrap_or_default());
    s.trace_id = t(2);
    s.parent_span_id = t(3);
    s.run_id = t(4);
    s.session_id = t(5);
    s.user_id = t(6);
    s.app_id = t(7);
    s.app_name = t(8);
    s.workflow_id = t(9);
    s.workflow_version = t(10);
    s.span_kind = t(11).map(|k| SpanKind::from_stored(&k).unwrap_or(SpanKind::Other));
    s.node_type = t(12);
    s.name = t(13);
    s.status = t(14).map(|k| Status::from_stored(&k).unwrap_or(Status::Unset));
    s.raw_status = t(15);
    s.error_message = t(16);
    s.error_class = t(17);
    s.start_time = int(&row[18])?;
    s.end_time = int(&row[19])?;
    s.model_name = t(20);
    s.model_provider = t(21);
    s.input_tokens = int(&row[22])?;
    s.output_tokens = int(&row[23])?;
    s.total_tokens = int(&row[24])?;
    s.cost = float(&row[25]);
    s.currency = t(26);
    s.tool_name = t(27);
    s.input = t(28);
    s.output = t(29);
    s.source = t(30);
    s.ingest_version = int(&row[31])?.and_then(|v| u32::try_from(v).ok());
    let filed_at = int(&row[32])?.unwrap_or(0);
    let version = int(&row[33])?
        .and_then(|v| u64::try_from(v).ok())
        .unwrap_or(0);
    s.attributes = zip_map(&row[34], &row[35])?;
    s.tags = zip_map(&row[36], &row[37])?;
    Ok(Stored {
        span: s,
        filed_at,
        version,
    })
}

/// One `JSONEachRow` line of a stored row (with its newline).
pub(crate) fn encode(layout: &Layout, row: &Stored, out: &mut Vec<u8>) -> Result<(), Error> {
    let s = &row.span;
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_owned(), v);
    };
    let opt = |v: &Option<String>| v.clone().map_or(Value::Null, Value::String);
    let num = |v: Option<i64>| v.map_or(Value::Null, Value::from);
    put("project", Value::String(s.project.clone()));
    put("span_id", Value::String(s.span_id.clone()));
    put("filed_at", Value::from(row.filed_at));
    put("_version", Value::from(row.version));
    put("trace_id", opt(&s.trace_id));
    put("parent_span_id", opt(&s.parent_span_id));
    put("run_id", opt(&s.run_id));
    put("session_id", opt(&s.session_id));
    put("user_id", opt(&s.user_id));
    put("app_id", opt(&s.app_id));
    put("app_name", opt(&s.app_name));
    put("workflow_id", opt(&s.workflow_id));
    put("workflow_version", opt(&s.workflow_version));
    put(
        "span_kind",
        s.span_kind.map_or(Value::Null, |k| k.as_str().into()),
    );
    put("node_type", opt(&s.node_type));
    put("name", opt(&s.name));
    put(
        "status",
        s.status.map_or(Value::Null, |k| k.as_str().into()),
    );
    put("raw_status", opt(&s.raw_status));
    put("error_message", opt(&s.error_message));
    put("error_class", opt(&s.error_class));
    put("start_time", num(s.start_time));
    put("end_time", num(s.end_time));
    put("duration", num(s.duration_ns()));
    put("model_name", opt(&s.model_name));
    put("model_provider", opt(&s.model_provider));
    put("input_tokens", num(s.input_tokens));
    put("output_tokens", num(s.output_tokens));
    put("total_tokens", num(s.total_tokens));
    put(
        "cost",
        s.cost
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number),
    );
    put("currency", opt(&s.currency));
    put("tool_name", opt(&s.tool_name));
    put("input", opt(&s.input));
    put("output", opt(&s.output));
    put("source", opt(&s.source));
    put(
        "ingest_version",
        s.ingest_version.map_or(Value::Null, Value::from),
    );
    for (name, map) in [("attributes", &s.attributes), ("tags", &s.tags)] {
        match layout.profile {
            Profile::Modern => {
                let obj: Map<String, Value> = map
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect();
                put(name, Value::Object(obj));
            }
            Profile::Legacy => {
                put(
                    &format!("{name}_keys"),
                    map.keys().cloned().map(Value::String).collect(),
                );
                put(
                    &format!("{name}_values"),
                    map.values().cloned().map(Value::String).collect(),
                );
            }
        }
    }
    serde_json::to_writer(&mut *out, &Value::Object(m))
        .map_err(|e| Error::Decode(format!("cannot encode a row: {e}")))?;
    out.push(b'\n');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells_of(layout: &Layout, stored: &Stored) -> Vec<Value> {
        // What the server would answer for `select_list`: the encoded
        // row's values in select order.
        let mut line = Vec::new();
        encode(layout, stored, &mut line).expect("encodes");
        let obj: Map<String, Value> = serde_json::from_slice(&line).expect("json");
        let mut cells: Vec<Value> = SCALARS.iter().map(|c| obj[*c].clone()).collect();
        cells.push(obj["filed_at"].clone());
        cells.push(obj["_version"].clone());
        for m in MAPS {
            match layout.profile {
                Profile::Modern => {
                    let map = obj[m].as_object().cloned().unwrap_or_default();
                    cells.push(map.keys().cloned().map(Value::String).collect());
                    cells.push(map.values().cloned().collect());
                }
                Profile::Legacy => {
                    cells.push(obj[&format!("{m}_keys")].clone());
                    cells.push(obj[&format!("{m}_values")].clone());
                }
            }
        }
        cells
    }

    #[test]
    fn a_span_survives_encoding_and_decoding_in_both_profiles() {
        let mut s = Span::new("p", "s1");
        s.trace_id = Some("t".into());
        s.span_kind = Some(SpanKind::Tool);
        s.status = Some(Status::Error);
        s.start_time = Some(-5);
        s.end_time = Some(1_700_000_000_000_000_123);
        s.cost = Some(0.125);
        s.input_tokens = Some(i64::MAX);
        s.ingest_version = Some(1);
        s.input = Some("{\"q\":\"naïve \\\" quote\"}".into());
        s.attributes.insert("a.b".into(), "1".into());
        s.tags.insert("category".into(), "phone".into());
        let stored = Stored {
            span: s.clone(),
            filed_at: 1_700_000_000,
            version: 7,
        };
        for p in [Profile::Modern, Profile::Legacy] {
            let l = Layout::plain(p);
            let back = decode(&cells_of(&l, &stored)).expect("decodes");
            assert_eq!(back.span, s, "{p:?}");
            assert_eq!((back.filed_at, back.version), (1_700_000_000, 7));
        }
        assert!(select_list(&Layout::plain(Profile::Legacy)).contains("attributes_keys"));
        assert!(select_list(&Layout::plain(Profile::Modern)).contains("mapKeys(attributes)"));
    }

    #[test]
    fn a_short_row_is_an_error_not_a_panic() {
        assert!(decode(&[Value::Null]).is_err());
    }
}
