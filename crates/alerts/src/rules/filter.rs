//! Rule filters and group-by on rollup key fields, including business tags
//! (`tags.category`): which series a rule reads and which alert each
//! belongs to.

use std::collections::BTreeMap;

use loupe_rollup::RollupKey;

use super::Rule;

/// A rollup key field a rule can filter or group on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// A fixed dimension, by name.
    Dim(&'static str),
    /// A business tag: its position in `[metrics] labels` and its name.
    Tag(usize, String),
}

const DIMS: [&str; 9] = [
    "project",
    "app_id",
    "workflow_id",
    "span_kind",
    "node_type",
    "tool_name",
    "model_name",
    "status",
    "error_class",
];

impl Field {
    /// Parses `tool_name`, `tags.category` (or a bare configured tag name).
    pub fn parse(name: &str, labels: &[String]) -> Result<Field, String> {
        if let Some(d) = DIMS.iter().find(|d| **d == name) {
            return Ok(Field::Dim(d));
        }
        let tag = name.strip_prefix("tags.").unwrap_or(name);
        match labels.iter().position(|l| l == tag) {
            Some(i) => Ok(Field::Tag(i, tag.to_owned())),
            None if name.starts_with("tags.") => Err(format!(
                "tag {tag:?} is not a rollup dimension; add it to [metrics] labels (now {labels:?})"
            )),
            None => Err(format!(
                "unknown field {name:?} (use one of {DIMS:?} or tags.<label>)"
            )),
        }
    }

    /// The field's value in `key`.
    pub fn get<'a>(&self, key: &'a RollupKey) -> &'a str {
        match self {
            Field::Dim(d) => match *d {
                "project" => &key.project,
                "app_id" => &key.app_id,
                "workflow_id" => &key.workflow_id,
                "span_kind" => &key.span_kind,
                "node_type" => &key.node_type,
                "tool_name" => &key.tool_name,
                "model_name" => &key.model_name,
                "status" => &key.status,
                _ => &key.error_class,
            },
            Field::Tag(i, _) => key.tags.get(*i).map_or("", String::as_str),
        }
    }

    /// The label name this field has on alerts (`category` for a tag).
    pub fn label(&self) -> &str {
        match self {
            Field::Dim(d) => d,
            Field::Tag(_, name) => name,
        }
    }
}

/// Whether `actual` matches a filter `wanted` (`!x`: anything but x).
pub fn value_matches(wanted: &str, actual: &str) -> bool {
    match wanted.strip_prefix('!') {
        Some(not) => actual != not,
        None => actual == wanted,
    }
}

/// A rule's filters and group-by, resolved against the label tags.
#[derive(Debug, Clone)]
pub struct Selector {
    filters: Vec<(Field, String)>,
    group_by: Vec<Field>,
}

impl Selector {
    /// Resolves a (validated) rule; unknown fields are skipped. A rule of
    /// a project selects that project's series only, whatever its filters
    /// say.
    pub fn new(rule: &Rule, labels: &[String]) -> Selector {
        let mut filters: Vec<(Field, String)> = rule
            .filters
            .iter()
            .filter_map(|(k, v)| Some((Field::parse(k, labels).ok()?, v.clone())))
            .collect();
        if let Some(project) = &rule.project {
            filters.retain(|(f, _)| *f != Field::Dim("project"));
            filters.insert(0, (Field::Dim("project"), project.clone()));
        }
        Selector {
            filters,
            group_by: rule
                .group_by
                .iter()
                .filter_map(|g| Field::parse(g, labels).ok())
                .collect(),
        }
    }

    /// Whether the series `key` is selected.
    pub fn matches(&self, key: &RollupKey) -> bool {
        self.filters
            .iter()
            .all(|(f, v)| value_matches(v, f.get(key)))
    }

    /// The group labels of `key` (empty without group-by).
    pub fn group(&self, key: &RollupKey) -> BTreeMap<String, String> {
        self.group_by
            .iter()
            .map(|f| (f.label().to_owned(), f.get(key).to_owned()))
            .collect()
    }

    /// The exact-match filters as labels (for links and notices).
    pub fn fixed_labels(&self) -> BTreeMap<String, String> {
        self.filters
            .iter()
            .filter(|(_, v)| !v.starts_with('!'))
            .map(|(f, v)| (f.label().to_owned(), v.clone()))
            .collect()
    }
}

/// A stable text key of a group: `k=v,k=v` (empty for no group-by).
pub fn group_key(group: &BTreeMap<String, String>) -> String {
    group
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}
