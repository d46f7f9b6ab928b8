//! `error_signature` on read, for spans stored before the pipeline signed
//! them (issue 17: "existing data gets them too").
//!
//! The pipeline writes a failed span's signature to
//! `attributes["loupe.error_signature"]` at ingest
//! (`loupe_normalise::errors::enrich`). Spans written by earlier versions
//! have an error message and no signature, so `by error_signature` put all
//! of them in one empty group. The query language reads the field through
//! [`expr`]: the stored signature when there is one, else the one
//! `enrich` would have given, computed from the row's status, message and
//! class. The stored value is returned as is, so the regular expressions
//! run only on old failed rows.

use std::sync::{Arc, OnceLock};

use arrow::array::{Array, ArrayRef, AsArray, StringArray, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::ident;
use loupe_model::column;

const NAME: &str = "loupe_error_signature";

/// `(stored signature, status, error_message, error_class)` → signature.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SignOnRead {
    signature: Signature,
}

impl ScalarUDFImpl for SignOnRead {
    fn name(&self) -> &str {
        NAME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let [stored, status, message, class] = args.args.as_slice() else {
            return exec_err!("{NAME} takes four arguments");
        };
        let text = |v: &ColumnarValue| -> Result<ArrayRef> {
            let a = v.to_array(rows)?;
            Ok(arrow::compute::cast(&a, &DataType::Utf8)?)
        };
        let (stored, status, message, class) =
            (text(stored)?, text(status)?, text(message)?, text(class)?);
        let [stored, status, message, class] =
            [&stored, &status, &message, &class].map(|a| a.as_string_opt::<i32>());
        let (Some(stored), Some(status), Some(message), Some(class)) =
            (stored, status, message, class)
        else {
            return exec_err!("{NAME}: arguments are not text");
        };
        fn value(a: &StringArray, i: usize) -> Option<&str> {
            (!a.is_null(i)).then(|| a.value(i))
        }
        let mut out = StringBuilder::with_capacity(rows, 0);
        for i in 0..rows {
            if let Some(sig) = value(stored, i) {
                out.append_value(sig);
                continue;
            }
            // As the pipeline signs at ingest (`enrich`).
            let signed = (value(status, i) == Some("error"))
                .then(|| loupe_normalise::errors::sign(value(message, i), value(class, i)))
                .flatten();
            match signed {
                Some((_, sig)) => out.append_value(sig),
                None => out.append_null(),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

fn udf() -> Arc<ScalarUDF> {
    static UDF: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    UDF.get_or_init(|| {
        Arc::new(ScalarUDF::new_from_impl(SignOnRead {
            signature: Signature::any(4, Volatility::Immutable),
        }))
    })
    .clone()
}

/// The `error_signature` field: `stored` (the attribute's value) when set,
/// else the signature computed from the row.
pub(crate) fn expr(stored: Expr) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(
        udf(),
        vec![
            stored,
            ident(column::STATUS),
            ident(column::ERROR_MESSAGE),
            ident(column::ERROR_CLASS),
        ],
    ))
}
