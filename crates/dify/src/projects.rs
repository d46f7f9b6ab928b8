//! Which Loupe project a Dify row lands in: one Dify install has several
//! workspaces (tenants) and many apps, and each team should see its own
//! runs with its own keys.
//!
//! Rules map an app id or a workspace (tenant) id to a project; an app rule
//! wins over a workspace rule, and rows no rule names go to the default
//! project (`[dify] project`). The sync writes each row to its project and
//! the cleanup verifies each row in that same project.

use std::collections::{BTreeSet, HashMap};

use loupe_model::ProjectId;
use serde::{Deserialize, Serialize};

use crate::Error;

/// One `[[dify.projects]]` entry: rows of `app`, or of workspace `tenant`,
/// go to `project`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectRule {
    /// A Dify workspace id (`tenants.id`, every row's `tenant_id`).
    #[serde(default)]
    pub tenant: Option<String>,
    /// A Dify app id (`apps.id`): wins over a workspace rule.
    #[serde(default)]
    pub app: Option<String>,
    /// The Loupe project.
    pub project: String,
}

/// The resolved rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projects {
    default: String,
    apps: HashMap<String, String>,
    tenants: HashMap<String, String>,
}

impl Projects {
    /// Everything to `default`.
    pub fn single(default: impl Into<String>) -> Self {
        Self {
            default: default.into(),
            apps: HashMap::new(),
            tenants: HashMap::new(),
        }
    }

    /// Checks and resolves `rules` (each names a valid project and exactly
    /// one of `tenant` or `app`; no app or tenant twice).
    pub fn new(default: &str, rules: &[ProjectRule]) -> Result<Self, Error> {
        let valid = |name: &str| {
            ProjectId::new(name)
                .map(|_| ())
                .map_err(|e| Error::Invalid(format!("dify.projects: {e}")))
        };
        valid(default)?;
        let mut out = Self::single(default);
        for (i, rule) in rules.iter().enumerate() {
            valid(&rule.project)?;
            let (map, key, what) = match (&rule.app, &rule.tenant) {
                (Some(app), None) => (&mut out.apps, app, "app"),
                (None, Some(tenant)) => (&mut out.tenants, tenant, "tenant"),
                _ => {
                    return Err(Error::Invalid(format!(
                        "dify.projects[{i}] (project {:?}): give exactly one of `tenant` or `app`",
                        rule.project
                    )));
                }
            };
            if let Some(before) = map.insert(key.clone(), rule.project.clone()) {
                return Err(Error::Invalid(format!(
                    "dify.projects[{i}]: {what} {key} is mapped twice (to {before:?} and {:?})",
                    rule.project
                )));
            }
        }
        Ok(out)
    }

    /// The project of a row of `app` in workspace `tenant` (when known).
    pub fn of(&self, tenant: Option<&str>, app: &str) -> &str {
        self.apps
            .get(app)
            .or_else(|| tenant.and_then(|t| self.tenants.get(t)))
            .unwrap_or(&self.default)
    }

    /// The project of rows no rule names.
    pub fn default_project(&self) -> &str {
        &self.default
    }

    /// Whether some rule is by workspace (then rows without a `tenant_id`
    /// column need their app's workspace).
    pub fn by_tenant(&self) -> bool {
        !self.tenants.is_empty()
    }

    /// Every project a row can land in, sorted.
    pub fn all(&self) -> BTreeSet<&str> {
        std::iter::once(self.default.as_str())
            .chain(self.apps.values().map(String::as_str))
            .chain(self.tenants.values().map(String::as_str))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(tenant: Option<&str>, app: Option<&str>, project: &str) -> ProjectRule {
        ProjectRule {
            tenant: tenant.map(str::to_owned),
            app: app.map(str::to_owned),
            project: project.into(),
        }
    }

    #[test]
    fn an_app_rule_wins_over_its_workspace_and_the_rest_goes_to_the_default() {
        let p = Projects::new(
            "default",
            &[
                rule(Some("t1"), None, "team-a"),
                rule(None, Some("app-9"), "vip"),
            ],
        )
        .expect("rules");
        assert_eq!(p.of(Some("t1"), "app-1"), "team-a");
        assert_eq!(p.of(Some("t1"), "app-9"), "vip");
        assert_eq!(p.of(Some("t2"), "app-2"), "default");
        assert_eq!(p.of(None, "app-1"), "default");
        assert_eq!(
            p.all().into_iter().collect::<Vec<_>>(),
            ["default", "team-a", "vip"]
        );
        assert!(p.by_tenant());
    }

    #[test]
    fn bad_rules_are_refused_naming_the_entry() {
        for (rules, needle) in [
            (vec![rule(None, None, "a")], "exactly one"),
            (vec![rule(Some("t"), Some("x"), "a")], "exactly one"),
            (vec![rule(Some("t"), None, "a b")], "invalid project"),
            (
                vec![rule(Some("t"), None, "a"), rule(Some("t"), None, "b")],
                "mapped twice",
            ),
        ] {
            let err = Projects::new("default", &rules)
                .expect_err(needle)
                .to_string();
            assert!(err.contains(needle), "{err}");
        }
    }
}
