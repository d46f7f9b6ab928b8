//! Business-tag extraction rules (`[[tags]]` in `loupe.toml`).
//!
//! A rule takes a value from a run's input JSON (by dotted path) or from any
//! span attribute (by name), optionally narrows it with a regex, and stores it
//! under the rule's tag name. Rules may be limited to a project and an app.
//! Tags are run-level: the store gives a tag found on any span of a run to
//! every span of that run (see `docs/DATA_MODEL.md`).

use loupe_model::{Span, SpanKind};
use regex::Regex;
use serde::{Deserialize, Serialize};

/// Where a rule reads its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TagSource {
    /// The run's input (the `input` JSON of the run's root span), by dotted
    /// path. A leading `inputs.` segment is optional.
    Input,
    /// A span attribute, by its exact name (any span of the run).
    Attribute,
}

/// One rule as written in the config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TagRuleConfig {
    /// Tag name (the key under `tags.`).
    pub name: String,
    /// Where to read: `input` or `attribute`.
    pub from: TagSource,
    /// Dotted JSON path (for `input`) or attribute name (for `attribute`).
    /// Defaults to the tag name.
    #[serde(default)]
    pub path: Option<String>,
    /// Optional regex: the first capture group (or the whole match) becomes
    /// the value; no match means no tag.
    #[serde(default)]
    pub regex: Option<String>,
    /// Only for this project.
    #[serde(default)]
    pub project: Option<String>,
    /// Only for this app id.
    #[serde(default)]
    pub app_id: Option<String>,
}

/// A rule that failed validation.
#[derive(Debug, Clone, thiserror::Error)]
#[error("tag rule {name:?}: {reason}")]
pub struct TagRuleError {
    /// The rule's tag name.
    pub name: String,
    /// What is wrong.
    pub reason: String,
}

#[derive(Debug)]
struct TagRule {
    config: TagRuleConfig,
    path: String,
    regex: Option<Regex>,
}

/// Validated rules, applied to every span at ingest.
#[derive(Debug, Default)]
pub struct TagRules(Vec<TagRule>);

impl TagRules {
    /// Validates rules (names, regexes).
    pub fn new(configs: &[TagRuleConfig]) -> Result<Self, TagRuleError> {
        let mut rules = Vec::with_capacity(configs.len());
        for c in configs {
            let err = |reason: String| TagRuleError {
                name: c.name.clone(),
                reason,
            };
            if c.name.is_empty()
                || !c
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            {
                return Err(err(
                    "name must be non-empty and use A-Z a-z 0-9 _ - .".into()
                ));
            }
            let regex = c
                .regex
                .as_deref()
                .map(Regex::new)
                .transpose()
                .map_err(|e| err(format!("invalid regex: {e}")))?;
            rules.push(TagRule {
                path: c.path.clone().unwrap_or_else(|| c.name.clone()),
                config: c.clone(),
                regex,
            });
        }
        Ok(Self(rules))
    }

    /// The tag names the rules set, each once, in rule order.
    pub fn names(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.0 {
            if !out.contains(&r.config.name) {
                out.push(r.config.name.clone());
            }
        }
        out
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds the tags the rules find on this span (existing tags win).
    pub fn apply(&self, span: &mut Span) {
        if self.0.is_empty() {
            return;
        }
        let is_root = span.parent_span_id.is_none() || span.span_kind == Some(SpanKind::Workflow);
        let input_json: Option<serde_json::Value> = if is_root {
            span.input
                .as_deref()
                .and_then(|t| serde_json::from_str(t).ok())
        } else {
            None
        };
        for rule in &self.0 {
            let c = &rule.config;
            if c.project.as_ref().is_some_and(|p| *p != span.project)
                || c.app_id
                    .as_ref()
                    .is_some_and(|a| Some(a) != span.app_id.as_ref())
                || span.tags.contains_key(&c.name)
            {
                continue;
            }
            let raw = match c.from {
                TagSource::Input => input_json.as_ref().and_then(|j| lookup(j, &rule.path)),
                TagSource::Attribute => span.attributes.get(&rule.path).cloned(),
            };
            let Some(raw) = raw else { continue };
            let value = match &rule.regex {
                None => Some(raw),
                Some(re) => re.captures(&raw).map(|caps| {
                    caps.get(1)
                        .or_else(|| caps.get(0))
                        .map_or_else(String::new, |m| m.as_str().to_owned())
                }),
            };
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                span.tags.insert(c.name.clone(), v);
            }
        }
    }
}

/// Span attributes that carry a Dify workspace (tenant) id: `dify.tenant_id`
/// from the database sync and Dify 1.19+'s exports, `metadata.tenant_id`
/// from 1.14's Langfuse and Phoenix/Arize providers (their metadata,
/// flattened).
pub const WORKSPACE_ATTRIBUTES: [&str; 2] = ["dify.tenant_id", "metadata.tenant_id"];

/// The default name of the workspace tag (`[dify] workspace_tag`).
pub const DEFAULT_WORKSPACE_TAG: &str = "workspace";

/// The built-in rules that tag every run with its Dify workspace under
/// `name` (none for an empty name): one rule per attribute of
/// [`WORKSPACE_ATTRIBUTES`], the first found wins. As a tag, the workspace
/// is run-level, a dimension of the hour rollups and of root-cause
/// analysis, and a filter that reads the small tags map, not the
/// attributes with their payloads.
pub fn workspace_rules(name: &str) -> Vec<TagRuleConfig> {
    if name.is_empty() {
        return Vec::new();
    }
    WORKSPACE_ATTRIBUTES
        .iter()
        .map(|attribute| TagRuleConfig {
            name: name.to_owned(),
            from: TagSource::Attribute,
            path: Some((*attribute).to_owned()),
            regex: None,
            project: None,
            app_id: None,
        })
        .collect()
}

/// Reads a dotted path; `inputs.` may be left out or added.
fn lookup(json: &serde_json::Value, path: &str) -> Option<String> {
    let walk = |path: &str| {
        path.split('.')
            .try_fold(json, |node, key| node.get(key))
            .and_then(scalar_text)
    };
    walk(path).or_else(|| match path.strip_prefix("inputs.") {
        Some(rest) => walk(rest),
        None => walk(&format!("inputs.{path}")),
    })
}

fn scalar_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, from: TagSource, path: Option<&str>, regex: Option<&str>) -> TagRuleConfig {
        TagRuleConfig {
            name: name.into(),
            from,
            path: path.map(str::to_owned),
            regex: regex.map(str::to_owned),
            project: None,
            app_id: None,
        }
    }

    #[test]
    fn rules_read_inputs_by_path_and_attributes_with_a_regex() {
        let rules = TagRules::new(&[
            rule("category", TagSource::Input, None, None),
            rule(
                "user_tier",
                TagSource::Input,
                Some("inputs.profile.tier"),
                None,
            ),
            rule(
                "http_status",
                TagSource::Attribute,
                Some("output.value"),
                Some(r#""status_code": (\d+)"#),
            ),
        ])
        .expect("rules");
        let mut root = Span::new("p", "r");
        root.input = Some(r#"{"category": "phone", "profile": {"tier": "gold"}}"#.into());
        rules.apply(&mut root);
        assert_eq!(root.tags.get("category").map(String::as_str), Some("phone"));
        assert_eq!(root.tags.get("user_tier").map(String::as_str), Some("gold"));

        let mut child = Span::new("p", "c");
        child.parent_span_id = Some("r".into());
        child.input = Some(r#"{"category": "not a run input"}"#.into());
        child
            .attributes
            .insert("output.value".into(), r#"{"status_code": 500}"#.into());
        rules.apply(&mut child);
        assert_eq!(
            child.tags.get("category"),
            None,
            "node inputs are not run inputs"
        );
        assert_eq!(
            child.tags.get("http_status").map(String::as_str),
            Some("500")
        );
    }

    #[test]
    fn invalid_rules_are_rejected_with_their_name() {
        let err = TagRules::new(&[rule("bad", TagSource::Input, None, Some("("))])
            .expect_err("must fail");
        assert!(err.to_string().contains("\"bad\""), "{err}");
        assert!(TagRules::new(&[rule("", TagSource::Input, None, None)]).is_err());
    }
}
