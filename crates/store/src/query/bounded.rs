//! SQL functions that can build large values, bounded before they allocate.
//!
//! `SELECT length(repeat('x', 2000000000))` allocated 2 GB inside one
//! function call, outside the query's memory pool, and the process was
//! OOM-killed (issue 14). Every function whose output can be much larger
//! than its input (`repeat`, `lpad`, `rpad`, `array_repeat`, `array_resize`,
//! `range`, `generate_series`, `replace`, `regexp_replace`) or that copies a
//! constant into every row (`concat`, `concat_ws`, `overlay`,
//! `array_concat`, `array_append`, `array_prepend`, `make_array`, and the
//! `||` operator, which [`super::sql_guard`] turns into [`CONCAT_OP`]) is
//! replaced in SQL sessions by a wrapper that computes an upper bound of
//! the bytes the call will build from its arguments, and refuses the call
//! naming `[query] max_function_bytes` when the bound is over it.
//!
//! The bound counts a constant argument once per row of the batch, since
//! that is how often it is copied. A call whose arguments are all
//! constants makes a constant, which a projection copies into every row of
//! a batch (8,192 rows), so its bound is `max_function_bytes / 8192`.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use arrow::compute::kernels::length::length;
use arrow::datatypes::{DataType, FieldRef, IntervalMonthDayNanoType, TimeUnit};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, TypeSignature, Volatility,
};

/// Rows of one batch: a constant may be copied this many times.
const BATCH_ROWS: u64 = 8192;

/// The name `a || b` is rewritten to (strings; arrays stay `||`).
pub const CONCAT_OP: &str = "loupe_concat_op";

/// How a function's output grows with its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Growth {
    /// `repeat(s, n)`: `len(s) × n`.
    Repeat,
    /// `lpad`/`rpad(s, n [, fill])`: `n` characters of up to 4 bytes.
    Pad,
    /// `array_repeat(e, n)`: `n` copies of the element.
    ArrayRepeat,
    /// `array_resize(a, n [, fill])`: `n` elements.
    Resize,
    /// `range`/`generate_series(start, stop [, step])`.
    Range,
    /// `replace(s, from, to)`: every `from` becomes `to`.
    Replace,
    /// `regexp_replace(s, pattern, replacement [, flags])`: every match
    /// (at most `len(s) + 1`) becomes the replacement with its group
    /// references (each at most `len(s)`).
    RegexpReplace,
    /// Output no larger than the arguments (constants counted per row).
    Linear,
}

const GUARDED: &[(&str, Growth)] = &[
    ("repeat", Growth::Repeat),
    ("lpad", Growth::Pad),
    ("rpad", Growth::Pad),
    ("array_repeat", Growth::ArrayRepeat),
    ("array_resize", Growth::Resize),
    ("range", Growth::Range),
    ("generate_series", Growth::Range),
    ("replace", Growth::Replace),
    ("regexp_replace", Growth::RegexpReplace),
    ("concat", Growth::Linear),
    ("concat_ws", Growth::Linear),
    ("overlay", Growth::Linear),
    ("array_concat", Growth::Linear),
    ("array_append", Growth::Linear),
    ("array_prepend", Growth::Linear),
    ("make_array", Growth::Linear),
];

/// Replaces the size-building functions of `ctx` by bounded ones, and
/// registers [`CONCAT_OP`].
pub(crate) fn register(ctx: &SessionContext, max_bytes: u64) {
    let state = ctx.state();
    let functions = state.scalar_functions();
    for (name, growth) in GUARDED {
        if let Some(inner) = functions.get(*name) {
            ctx.register_udf(ScalarUDF::new_from_impl(Bounded {
                inner: inner.clone(),
                growth: *growth,
                max_bytes,
            }));
        }
    }
    ctx.register_udf(ScalarUDF::new_from_impl(ConcatOp {
        signature: Signature::new(TypeSignature::Any(2), Volatility::Immutable),
        max_bytes,
    }));
}

/// A size-building function with its bound.
#[derive(Debug)]
struct Bounded {
    inner: Arc<ScalarUDF>,
    growth: Growth,
    max_bytes: u64,
}

impl PartialEq for Bounded {
    fn eq(&self, other: &Self) -> bool {
        self.inner == other.inner && self.max_bytes == other.max_bytes
    }
}
impl Eq for Bounded {}
impl Hash for Bounded {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.hash(state);
        self.max_bytes.hash(state);
    }
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }
    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        check(
            self.inner.name(),
            output_bound(self.growth, &args.args, args.number_rows)?,
            &args.args,
            self.max_bytes,
        )?;
        self.inner.invoke_with_args(args)
    }
}

/// `a || b` on strings: NULL when either is NULL, bounded like [`Bounded`].
#[derive(Debug, PartialEq, Eq, Hash)]
struct ConcatOp {
    signature: Signature,
    max_bytes: u64,
}

impl ScalarUDFImpl for ConcatOp {
    fn name(&self) -> &str {
        CONCAT_OP
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if arg_types.iter().any(|t| matches!(t, DataType::List(_))) {
            return plan_err!("`||` of arrays: use array_concat(a, b)");
        }
        Ok(DataType::Utf8)
    }
    fn schema_name(&self, args: &[datafusion::logical_expr::Expr]) -> Result<String> {
        match args {
            [a, b] => Ok(format!("{} || {}", a.schema_name(), b.schema_name())),
            _ => plan_err!("`||` takes two operands"),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        check(
            "||",
            output_bound(Growth::Linear, &args.args, rows)?,
            &args.args,
            self.max_bytes,
        )?;
        let [a, b] = args.args.as_slice() else {
            return exec_err!("`||` takes two operands");
        };
        let all_scalar = matches!((a, b), (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_)));
        let text = |v: &ColumnarValue| -> Result<ArrayRef> {
            let array = v.to_array(if is_scalar(v) { 1 } else { rows })?;
            Ok(arrow::compute::cast(&array, &DataType::Utf8)?)
        };
        let (a, b) = (text(a)?, text(b)?);
        let n = if all_scalar { 1 } else { rows };
        let mut out = arrow::array::StringBuilder::with_capacity(n, 0);
        let (a, b) = (a.as_string::<i32>(), b.as_string::<i32>());
        fn pick(array: &arrow::array::StringArray, i: usize) -> Option<&str> {
            let i = if array.len() == 1 { 0 } else { i };
            array.is_valid(i).then(|| array.value(i))
        }
        for i in 0..n {
            match (pick(a, i), pick(b, i)) {
                (Some(x), Some(y)) => out.append_value([x, y].concat()),
                _ => out.append_null(),
            }
        }
        let array: ArrayRef = Arc::new(out.finish());
        if all_scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &array, 0,
            )?))
        } else {
            Ok(ColumnarValue::Array(array))
        }
    }
}

fn is_scalar(v: &ColumnarValue) -> bool {
    matches!(v, ColumnarValue::Scalar(_))
}

/// Refuses a call whose bound is over the limit (a constant result's limit
/// is the per-batch one divided by the rows a batch may copy it into).
fn check(name: &str, bound: u64, args: &[ColumnarValue], max_bytes: u64) -> Result<()> {
    let constant = args.iter().all(is_scalar);
    let limit = if constant {
        (max_bytes / BATCH_ROWS).max(1)
    } else {
        max_bytes
    };
    if bound > limit {
        let what = if constant {
            format!(
                "a constant of up to {bound} bytes (a constant is copied into every row of a \
                 batch, so it may build at most max_function_bytes / {BATCH_ROWS} = {limit})"
            )
        } else {
            format!("up to {bound} bytes for one batch, more than the limit of {limit}")
        };
        return exec_err!(
            "{name}(…) would build {what}; [query] max_function_bytes bounds what one SQL \
             function call may build"
        );
    }
    Ok(())
}

/// Per-row integers of an argument (NULL counts as 0).
enum Ints {
    Scalar(i64),
    Array(Int64Array),
}

impl Ints {
    fn at(&self, i: usize) -> i64 {
        match self {
            Ints::Scalar(v) => *v,
            Ints::Array(a) if a.len() == 1 => a.value(0),
            Ints::Array(a) => {
                if i < a.len() && a.is_valid(i) {
                    a.value(i)
                } else {
                    0
                }
            }
        }
    }
}

/// An argument as integers (casting; a value that does not cast is 0).
fn ints(v: &ColumnarValue) -> Result<Ints> {
    let array = match v {
        ColumnarValue::Scalar(s) => s.to_array_of_size(1)?,
        ColumnarValue::Array(a) => a.clone(),
    };
    let array = match array.data_type() {
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _) => arrow::compute::cast(
            &arrow::compute::cast(&array, &DataType::Timestamp(TimeUnit::Nanosecond, None))?,
            &DataType::Int64,
        )?,
        DataType::Interval(_) => {
            let nanos = arrow::compute::cast(
                &array,
                &DataType::Interval(arrow::datatypes::IntervalUnit::MonthDayNano),
            )?;
            let nanos = nanos.as_primitive::<IntervalMonthDayNanoType>();
            // The shortest a step can be: months of 28 days.
            Arc::new(Int64Array::from_iter(nanos.iter().map(|v| {
                v.map(|v| {
                    i64::from(v.months)
                        .saturating_mul(28 * 86_400_000_000_000)
                        .saturating_add(i64::from(v.days).saturating_mul(86_400_000_000_000))
                        .saturating_add(v.nanoseconds)
                })
            })))
        }
        _ => arrow::compute::cast_with_options(
            &array,
            &DataType::Int64,
            &arrow::compute::CastOptions {
                safe: true,
                ..Default::default()
            },
        )?,
    };
    let array = array.as_primitive::<arrow::datatypes::Int64Type>().clone();
    Ok(match v {
        ColumnarValue::Scalar(_) => {
            Ints::Scalar(if array.is_valid(0) { array.value(0) } else { 0 })
        }
        ColumnarValue::Array(_) => Ints::Array(array),
    })
}

/// Per-row byte sizes of an argument: string and binary lengths, else the
/// value's share of the array's memory.
fn sizes(v: &ColumnarValue, rows: usize) -> Result<Ints> {
    let array = match v {
        ColumnarValue::Scalar(s) => {
            return Ok(Ints::Scalar(i64::try_from(s.size()).unwrap_or(i64::MAX)));
        }
        ColumnarValue::Array(a) => a,
    };
    match array.data_type() {
        DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView => {
            let lengths = arrow::compute::cast(&length(array)?, &DataType::Int64)?;
            Ok(Ints::Array(
                lengths
                    .as_primitive::<arrow::datatypes::Int64Type>()
                    .clone(),
            ))
        }
        _ => {
            let share = array.get_array_memory_size() / rows.max(1);
            Ok(Ints::Scalar(i64::try_from(share).unwrap_or(i64::MAX)))
        }
    }
}

fn arg(args: &[ColumnarValue], i: usize) -> Option<&ColumnarValue> {
    args.get(i)
}

/// An upper bound of the bytes the call builds for `rows` rows.
fn output_bound(growth: Growth, args: &[ColumnarValue], rows: usize) -> Result<u64> {
    let rows = if args.iter().all(is_scalar) { 1 } else { rows };
    let null = ColumnarValue::Scalar(ScalarValue::Null);
    let a = |i: usize| arg(args, i).unwrap_or(&null);
    let per_row: Box<dyn Fn(usize) -> i128> = match growth {
        Growth::Repeat => {
            let (s, n) = (sizes(a(0), rows)?, ints(a(1))?);
            Box::new(move |i| i128::from(s.at(i)) * i128::from(n.at(i).max(0)))
        }
        Growth::Pad => {
            let n = ints(a(1))?;
            Box::new(move |i| 4 * i128::from(n.at(i).max(0)))
        }
        Growth::ArrayRepeat => {
            let (e, n) = (sizes(a(0), rows)?, ints(a(1))?);
            Box::new(move |i| i128::from(e.at(i).max(8)) * i128::from(n.at(i).max(0)))
        }
        Growth::Resize => {
            let n = ints(a(1))?;
            let fill = match arg(args, 2) {
                Some(f) => sizes(f, rows)?,
                None => Ints::Scalar(8),
            };
            Box::new(move |i| i128::from(fill.at(i).max(8)) * i128::from(n.at(i).max(0)))
        }
        Growth::Range => {
            let (start, stop) = match args.len() {
                1 => (Ints::Scalar(0), ints(a(0))?),
                _ => (ints(a(0))?, ints(a(1))?),
            };
            let step = match arg(args, 2) {
                Some(s) => ints(s)?,
                None => Ints::Scalar(1),
            };
            Box::new(move |i| {
                let span = (i128::from(stop.at(i)) - i128::from(start.at(i))).abs();
                let step = i128::from(step.at(i)).abs().max(1);
                (span / step + 1) * 8
            })
        }
        Growth::Replace => {
            let (s, from, to) = (sizes(a(0), rows)?, sizes(a(1), rows)?, sizes(a(2), rows)?);
            Box::new(move |i| {
                let len = i128::from(s.at(i));
                let hits = match from.at(i) {
                    0 => len + 1,
                    f => len / i128::from(f),
                };
                len + hits * i128::from(to.at(i))
            })
        }
        Growth::RegexpReplace => {
            let (s, repl) = (sizes(a(0), rows)?, sizes(a(2), rows)?);
            // Group references (`\1`, `${name}`) copy at most the input.
            let refs = match arg(args, 2) {
                Some(ColumnarValue::Scalar(v)) => {
                    let text = v.to_string();
                    text.matches(['\\', '$']).count() as i128
                }
                _ => i128::from(repl_max(&repl, rows)),
            };
            Box::new(move |i| {
                let len = i128::from(s.at(i));
                len + (len + 1) * (i128::from(repl.at(i)) + refs * len)
            })
        }
        Growth::Linear => {
            let all: Vec<Ints> = args.iter().map(|v| sizes(v, rows)).collect::<Result<_>>()?;
            Box::new(move |i| all.iter().map(|s| i128::from(s.at(i))).sum())
        }
    };
    let mut total: i128 = 0;
    for i in 0..rows {
        total = total.saturating_add(per_row(i).max(0));
        if total > i128::from(u64::MAX) {
            break;
        }
    }
    Ok(u64::try_from(total).unwrap_or(u64::MAX))
}

/// The longest replacement of a column of replacements (its bytes bound
/// its group references).
fn repl_max(repl: &Ints, rows: usize) -> i64 {
    (0..rows).map(|i| repl.at(i)).max().unwrap_or(0)
}
