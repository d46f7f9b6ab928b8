//! Mirrored keys: the map entries questions filter on most, kept again as
//! columns of their own in the store's layout.
//!
//! Every "one workspace" question filters on `attributes.dify.tenant_id`
//! or on the workspace tag. In the maps, such a filter decodes every key
//! and value of every row it reads, the attributes' large payloads
//! (`dify.process_data`) included: 36 ms against DuckDB's 13 ms, which
//! reads a plain `tenant_id` column (docs/BENCHMARKS.md). A mirror column
//! holds exactly the map's value (null where the key is absent), so a
//! filter, group or sort on the key reads the column instead and answers
//! the same; the maps keep the entry, so nothing that reads a span back
//! changes.
//!
//! Parts written before the mirrors lack their columns. The Parquet
//! reader's expression adapter ([`MirrorAdapterFactory`]) reads such a
//! part's mirror from its map, so a query answers the same over old and new
//! parts; a part compaction rewrites gains the columns.
//!
//! The mirror columns are the store's own: SQL sees `loupe_model::schema()`
//! as every backend serves it (`SpansTable::model_columns`), and the query
//! language names the keys as it always did (`attributes.dify.tenant_id`,
//! `tags.workspace`); only this store's compile reads the columns
//! (`query::compile`).

use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::ScalarFunctionExpr;
use datafusion::physical_expr::expressions::{Column, Literal};
use datafusion::physical_expr_adapter::{
    DefaultPhysicalExprAdapterFactory, PhysicalExprAdapter, PhysicalExprAdapterFactory,
};
use datafusion::physical_plan::PhysicalExpr;
use loupe_backend::plan::FieldRef;
use loupe_model::{Span, column};

/// Which map a mirrored key lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MapColumn {
    Attributes,
    Tags,
}

impl MapColumn {
    fn name(self) -> &'static str {
        match self {
            MapColumn::Attributes => column::ATTRIBUTES,
            MapColumn::Tags => column::TAGS,
        }
    }
}

/// One mirrored key: `column` holds `map[key]`.
#[derive(Debug)]
pub(crate) struct Mirror {
    pub(crate) column: &'static str,
    pub(crate) map: MapColumn,
    pub(crate) key: &'static str,
}

/// The mirrors, in the order their columns follow the model's schema.
/// Adding one is a layout change: old parts read it through the adapter.
pub(crate) const MIRRORS: [Mirror; 2] = [
    // Dify's workspace on every node and run the sync and the 1.19+
    // exports write (`loupe_normalise::tags::WORKSPACE_ATTRIBUTES`).
    Mirror {
        column: "_tenant_id",
        map: MapColumn::Attributes,
        key: loupe_normalise::tags::WORKSPACE_ATTRIBUTES[0],
    },
    // The built-in workspace tag under its default name
    // (`[dify] workspace_tag`), run-level, so on every span of a run.
    Mirror {
        column: "_workspace_tag",
        map: MapColumn::Tags,
        key: loupe_normalise::tags::DEFAULT_WORKSPACE_TAG,
    },
];

/// The store's table schema: `loupe_model::schema()`, then the mirror
/// columns (after every model column, so a projection of the model's
/// columns has the same indices in both).
pub fn storage_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let model = loupe_model::schema();
            let mut fields: Vec<Field> =
                model.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.extend(
                MIRRORS
                    .iter()
                    .map(|m| Field::new(m.column, DataType::Utf8, true)),
            );
            Arc::new(Schema::new_with_metadata(fields, model.metadata().clone()))
        })
        .clone()
}

/// The mirror column that holds `f`, if any.
pub(crate) fn column_of(f: &FieldRef) -> Option<&'static str> {
    let (map, key) = match f {
        FieldRef::Attribute(k) => (MapColumn::Attributes, k),
        FieldRef::Tag(k) => (MapColumn::Tags, k),
        FieldRef::Column { .. } | FieldRef::Json { .. } => return None,
    };
    MIRRORS
        .iter()
        .find(|m| m.map == map && m.key == key)
        .map(|m| m.column)
}

/// Whether `e` reads a mirror column.
pub(crate) fn names_a_mirror(e: &Expr) -> bool {
    e.column_refs()
        .iter()
        .any(|c| MIRRORS.iter().any(|m| m.column == c.name))
}

/// The span's value of each mirror, in [`MIRRORS`] order.
pub(crate) fn values(s: &Span) -> [Option<&str>; MIRRORS.len()] {
    std::array::from_fn(|i| {
        let m = &MIRRORS[i];
        let map = match m.map {
            MapColumn::Attributes => &s.attributes,
            MapColumn::Tags => &s.tags,
        };
        map.get(m.key).map(String::as_str)
    })
}

/// Rewrites, for each Parquet part, references to a mirror column the part
/// lacks into the lookup of its key in the part's map; everything else is
/// DataFusion's default adaptation.
#[derive(Debug)]
pub(crate) struct MirrorAdapterFactory;

impl PhysicalExprAdapterFactory for MirrorAdapterFactory {
    fn create(
        &self,
        logical_file_schema: SchemaRef,
        physical_file_schema: SchemaRef,
    ) -> DfResult<Arc<dyn PhysicalExprAdapter>> {
        let lacks = MIRRORS
            .iter()
            .any(|m| physical_file_schema.index_of(m.column).is_err());
        let default = DefaultPhysicalExprAdapterFactory
            .create(logical_file_schema, physical_file_schema.clone())?;
        Ok(Arc::new(MirrorAdapter {
            physical: lacks.then_some(physical_file_schema),
            default,
        }))
    }
}

#[derive(Debug)]
struct MirrorAdapter {
    /// The part's schema when it lacks a mirror column (else no rewrite).
    physical: Option<SchemaRef>,
    default: Arc<dyn PhysicalExprAdapter>,
}

impl PhysicalExprAdapter for MirrorAdapter {
    fn rewrite(&self, expr: Arc<dyn PhysicalExpr>) -> DfResult<Arc<dyn PhysicalExpr>> {
        let Some(physical) = &self.physical else {
            return self.default.rewrite(expr);
        };
        let expr = expr
            .transform(|e| {
                let Some(c) = e.downcast_ref::<Column>() else {
                    return Ok(Transformed::no(e));
                };
                if physical.index_of(c.name()).is_ok() {
                    return Ok(Transformed::no(e));
                }
                match MIRRORS.iter().find(|m| m.column == c.name()) {
                    Some(m) => Ok(Transformed::yes(map_lookup(physical, m)?)),
                    None => Ok(Transformed::no(e)),
                }
            })
            .data()?;
        self.default.rewrite(expr)
    }
}

/// `map[key]` over a part whose schema is `physical`: null when the part
/// has no such map either.
fn map_lookup(physical: &SchemaRef, m: &Mirror) -> DfResult<Arc<dyn PhysicalExpr>> {
    let Ok(index) = physical.index_of(m.map.name()) else {
        return Ok(Arc::new(Literal::new(ScalarValue::Utf8(None))));
    };
    let map: Arc<dyn PhysicalExpr> = Arc::new(Column::new(m.map.name(), index));
    let key: Arc<dyn PhysicalExpr> =
        Arc::new(Literal::new(ScalarValue::Utf8(Some(m.key.to_owned()))));
    Ok(Arc::new(ScalarFunctionExpr::try_new(
        datafusion::functions::core::get_field(),
        vec![map, key],
        physical,
        Arc::new(ConfigOptions::default()),
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_schema_is_the_models_then_the_mirrors() {
        let (model, store) = (loupe_model::schema(), storage_schema());
        assert_eq!(store.fields().len(), model.fields().len() + MIRRORS.len());
        for (m, s) in model.fields().iter().zip(store.fields()) {
            assert_eq!(m, s);
        }
        for m in &MIRRORS {
            assert!(
                model.index_of(m.column).is_err(),
                "{} is a model column",
                m.column
            );
            assert!(model.index_of(m.map.name()).is_ok());
        }
    }

    #[test]
    fn a_mirror_holds_exactly_its_keys_value() {
        let tenant = FieldRef::Attribute("dify.tenant_id".into());
        assert_eq!(column_of(&tenant), Some("_tenant_id"));
        assert_eq!(
            column_of(&FieldRef::Tag("workspace".into())),
            Some("_workspace_tag")
        );
        // The same key in the other map, or another workspace attribute,
        // is not mirrored.
        assert_eq!(column_of(&FieldRef::Tag("dify.tenant_id".into())), None);
        assert_eq!(column_of(&FieldRef::Attribute("workspace".into())), None);
        assert_eq!(
            column_of(&FieldRef::Attribute("metadata.tenant_id".into())),
            None
        );

        let mut s = Span::new("p", "s");
        assert_eq!(values(&s), [None, None]);
        s.attributes.insert("dify.tenant_id".into(), "t1".into());
        s.attributes
            .insert("metadata.tenant_id".into(), "t2".into());
        s.tags.insert("workspace".into(), "w".into());
        assert_eq!(values(&s), [Some("t1"), Some("w")]);
    }
}
