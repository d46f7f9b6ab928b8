//! The business-tag rules in effect: the config's `[[tags]]` (read-only
//! here; changed in `loupe.toml`) followed by the rules managed over the
//! API and the console, kept in `tag-rules.json` in the data directory.
//! An edit is validated with every other rule, written durably, then
//! swapped in for every clone of the pipeline at once: the next write is
//! tagged by the new rules, stored runs only by `POST /api/v1/tags/apply`.
//! Built-in rules (the Dify workspace, `[dify] workspace_tag`) run last,
//! so a tag the user's rules set is never replaced by them.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use loupe_normalise::tags::{TagRuleConfig, TagRules};
use serde::{Deserialize, Serialize};

/// The managed rules' file in the data directory.
pub const FILE: &str = "tag-rules.json";

/// Managed rules one project may have.
pub const MAX_RULES_PER_PROJECT: usize = 200;

/// Longest name, path, app id and regex a managed rule may give (bytes).
const MAX_NAME: usize = 64;
const MAX_TEXT: usize = 512;

/// `tag-rules.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    version: u32,
    rules: Vec<TagRuleConfig>,
}

/// The rules of `tag-rules.json` at `path` (none without the file).
fn read_managed(path: &Path) -> Result<Vec<TagRuleConfig>, TagEditError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let file: RulesFile = serde_json::from_slice(&bytes).map_err(|e| {
                TagEditError::Invalid(format!(
                    "{}: {e}; fix or remove the file (the rules it held were added over the API)",
                    path.display()
                ))
            })?;
            Ok(file.rules)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(TagEditError::Io {
            path: path.to_owned(),
            reason: e.to_string(),
        }),
    }
}

/// The tag names of the rules managed over the API in `data_dir`, in file
/// order: with the config's, the tags the hour rollups keep.
///
/// # Errors
/// As [`TagSet::open`] for an unreadable or invalid file.
pub fn managed_names(data_dir: &Path) -> Result<Vec<String>, TagEditError> {
    Ok(read_managed(&data_dir.join(FILE))?
        .into_iter()
        .map(|r| r.name)
        .collect())
}

/// Where a listed rule is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleSource {
    /// `[[tags]]` in `loupe.toml`.
    Config,
    /// `tag-rules.json`, edited over the API.
    Console,
    /// Built into Loupe (`[dify] workspace_tag`); runs after the others.
    Builtin,
}

/// A rule as listed for a project.
#[derive(Debug, Clone, Serialize)]
pub struct ListedRule {
    /// The rule.
    #[serde(flatten)]
    pub rule: TagRuleConfig,
    /// Where it is set.
    pub source: RuleSource,
}

/// Why an edit was refused.
#[derive(Debug, thiserror::Error)]
pub enum TagEditError {
    /// The rule is not valid (the caller's: 422).
    #[error("{0}")]
    Invalid(String),
    /// The rule is set in `loupe.toml` (409).
    #[error(
        "tag rule {0:?} is set in loupe.toml ([[tags]]); change or remove it there, or use another name"
    )]
    InConfig(String),
    /// No managed rule of that name (404).
    #[error("no tag rule {0:?} was added over the API in this project")]
    NotFound(String),
    /// This pipeline keeps no file (a read-only or test pipeline: 404).
    #[error("tag rules are not editable here (no data directory)")]
    NotManaged,
    /// The file could not be written (500); nothing changed.
    #[error("cannot write {path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// The rules of a pipeline, shared by all its clones.
#[derive(Debug)]
pub struct TagSet {
    config: Vec<TagRuleConfig>,
    builtin: Vec<TagRuleConfig>,
    file: Option<PathBuf>,
    /// The managed rules; held across an edit so edits never interleave.
    managed: Mutex<Vec<TagRuleConfig>>,
    compiled: RwLock<Arc<TagRules>>,
}

impl TagSet {
    /// Fixed rules, not editable (tests, benchmarks, read-only tools).
    pub fn fixed(rules: TagRules) -> Self {
        Self {
            config: Vec::new(),
            builtin: Vec::new(),
            file: None,
            managed: Mutex::default(),
            compiled: RwLock::new(Arc::new(rules)),
        }
    }

    /// The config's rules then the managed ones of `data_dir`'s
    /// `tag-rules.json` (absent: none).
    ///
    /// # Errors
    /// A file that cannot be read or parsed, or rules that do not
    /// validate, named with the file.
    pub fn open(config: Vec<TagRuleConfig>, data_dir: &Path) -> Result<Self, TagEditError> {
        let path = data_dir.join(FILE);
        let managed = read_managed(&path)?;
        let compiled = compile(&config, &managed, &[])
            .map_err(|e| TagEditError::Invalid(format!("{}: {e}", path.display())))?;
        Ok(Self {
            config,
            builtin: Vec::new(),
            file: Some(path),
            managed: Mutex::new(managed),
            compiled: RwLock::new(Arc::new(compiled)),
        })
    }

    /// The same set with built-in rules running after every other.
    ///
    /// # Errors
    /// Rules that do not validate (a bad name).
    pub fn with_builtin(mut self, builtin: Vec<TagRuleConfig>) -> Result<Self, TagEditError> {
        let compiled = compile(&self.config, &self.managed(), &builtin)
            .map_err(|e| TagEditError::Invalid(e.to_string()))?;
        self.builtin = builtin;
        self.compiled = RwLock::new(Arc::new(compiled));
        Ok(self)
    }

    /// The rules in effect now.
    pub fn current(&self) -> Arc<TagRules> {
        self.compiled
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Whether rules can be added over the API.
    pub fn editable(&self) -> bool {
        self.file.is_some()
    }

    fn managed(&self) -> std::sync::MutexGuard<'_, Vec<TagRuleConfig>> {
        self.managed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The rules that apply to `project`: the config's (for every project
    /// or this one), then its managed ones, then the built-in ones, in the
    /// order they run.
    pub fn rules(&self, project: &str) -> Vec<ListedRule> {
        let applies = |r: &&TagRuleConfig| r.project.as_deref().is_none_or(|p| p == project);
        let managed = self.managed();
        self.config
            .iter()
            .filter(applies)
            .map(|r| ListedRule {
                rule: r.clone(),
                source: RuleSource::Config,
            })
            .chain(managed.iter().filter(applies).map(|r| ListedRule {
                rule: r.clone(),
                source: RuleSource::Console,
            }))
            .chain(self.builtin.iter().filter(applies).map(|r| ListedRule {
                rule: r.clone(),
                source: RuleSource::Builtin,
            }))
            .collect()
    }

    /// Adds or replaces `project`'s managed rule named `rule.name`.
    ///
    /// # Errors
    /// See [`TagEditError`]; on any error nothing changed.
    pub fn put(&self, project: &str, mut rule: TagRuleConfig) -> Result<(), TagEditError> {
        let path = self.file.as_ref().ok_or(TagEditError::NotManaged)?;
        check_sizes(&rule)?;
        match rule.project.as_deref() {
            None => rule.project = Some(project.to_owned()),
            Some(p) if p == project => {}
            Some(p) => {
                return Err(TagEditError::Invalid(format!(
                    "project {p:?}: a key edits the rules of its own project ({project}) only"
                )));
            }
        }
        let name = rule.name.clone();
        if self
            .config
            .iter()
            .any(|r| r.name == name && r.project.as_deref().is_none_or(|p| p == project))
        {
            return Err(TagEditError::InConfig(name));
        }
        let mut managed = self.managed();
        let mut next = managed.clone();
        match next
            .iter_mut()
            .find(|r| r.name == name && r.project.as_deref() == Some(project))
        {
            Some(slot) => *slot = rule,
            None => {
                let count = next
                    .iter()
                    .filter(|r| r.project.as_deref() == Some(project))
                    .count();
                if count >= MAX_RULES_PER_PROJECT {
                    return Err(TagEditError::Invalid(format!(
                        "project {project} has {count} tag rules added over the API, the most \
                         allowed ({MAX_RULES_PER_PROJECT}); remove one first"
                    )));
                }
                next.push(rule);
            }
        }
        self.commit(path, &mut managed, next)
    }

    /// Removes `project`'s managed rule `name`.
    ///
    /// # Errors
    /// See [`TagEditError`]; on any error nothing changed.
    pub fn remove(&self, project: &str, name: &str) -> Result<(), TagEditError> {
        let path = self.file.as_ref().ok_or(TagEditError::NotManaged)?;
        let mut managed = self.managed();
        let mut next = managed.clone();
        let before = next.len();
        next.retain(|r| !(r.name == name && r.project.as_deref() == Some(project)));
        if next.len() == before {
            let in_config = self
                .config
                .iter()
                .any(|r| r.name == name && r.project.as_deref().is_none_or(|p| p == project));
            return Err(if in_config {
                TagEditError::InConfig(name.to_owned())
            } else {
                TagEditError::NotFound(name.to_owned())
            });
        }
        self.commit(path, &mut managed, next)
    }

    /// Validates `next` with the config's rules, writes it, then swaps it
    /// in (the file first: a rule in effect is always a rule on disk).
    fn commit(
        &self,
        path: &Path,
        managed: &mut Vec<TagRuleConfig>,
        next: Vec<TagRuleConfig>,
    ) -> Result<(), TagEditError> {
        let compiled = compile(&self.config, &next, &self.builtin)
            .map_err(|e| TagEditError::Invalid(e.to_string()))?;
        let file = RulesFile {
            version: 1,
            rules: next,
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| TagEditError::Io {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        loupe_fsutil::write_atomic(path, &bytes).map_err(|e| TagEditError::Io {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        *managed = file.rules;
        *self
            .compiled
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(compiled);
        Ok(())
    }
}

fn compile(
    config: &[TagRuleConfig],
    managed: &[TagRuleConfig],
    builtin: &[TagRuleConfig],
) -> Result<TagRules, loupe_normalise::tags::TagRuleError> {
    let all: Vec<TagRuleConfig> = config
        .iter()
        .chain(managed)
        .chain(builtin)
        .cloned()
        .collect();
    TagRules::new(&all)
}

/// Bounds what a rule from the network may hold before it is compiled.
pub fn check_sizes(rule: &TagRuleConfig) -> Result<(), TagEditError> {
    if rule.name.len() > MAX_NAME {
        return Err(TagEditError::Invalid(format!(
            "name: at most {MAX_NAME} bytes"
        )));
    }
    for (field, value) in [
        ("path", &rule.path),
        ("regex", &rule.regex),
        ("app_id", &rule.app_id),
        ("project", &rule.project),
    ] {
        if value.as_ref().is_some_and(|v| v.len() > MAX_TEXT) {
            return Err(TagEditError::Invalid(format!(
                "{field}: at most {MAX_TEXT} bytes"
            )));
        }
    }
    TagRules::new(std::slice::from_ref(rule)).map_err(|e| TagEditError::Invalid(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use loupe_model::{Span, SpanKind};
    use loupe_normalise::tags::TagSource;

    use super::*;

    fn rule(name: &str, path: &str) -> TagRuleConfig {
        TagRuleConfig {
            name: name.into(),
            from: TagSource::Input,
            path: Some(path.into()),
            regex: None,
            project: None,
            app_id: None,
        }
    }

    fn run(project: &str) -> Span {
        let mut s = Span::new(project, "s1");
        s.span_kind = Some(SpanKind::Workflow);
        s.input = Some(r#"{"category": "phone", "tier": "gold"}"#.into());
        s
    }

    fn tags_of(set: &TagSet, project: &str) -> Vec<(String, String)> {
        let mut s = run(project);
        set.current().apply(&mut s);
        s.tags.into_iter().collect()
    }

    #[test]
    fn edits_take_effect_at_once_persist_and_stay_in_their_project() {
        let dir = tempfile::tempdir().expect("tempdir");
        let set = TagSet::open(vec![rule("category", "category")], dir.path()).expect("open");
        assert_eq!(tags_of(&set, "shop").len(), 1);
        set.put("shop", rule("tier", "tier")).expect("put");
        assert_eq!(
            tags_of(&set, "shop"),
            vec![
                ("category".to_owned(), "phone".to_owned()),
                ("tier".to_owned(), "gold".to_owned())
            ]
        );
        assert_eq!(tags_of(&set, "other").len(), 1, "another project's rule");
        // Reopened from the file: the same rules.
        let again = TagSet::open(vec![rule("category", "category")], dir.path()).expect("reopen");
        assert_eq!(tags_of(&again, "shop").len(), 2);
        let listed = again.rules("shop");
        assert_eq!(
            listed.iter().map(|r| r.source).collect::<Vec<_>>(),
            vec![RuleSource::Config, RuleSource::Console]
        );
        assert_eq!(again.rules("other").len(), 1);
        again.remove("shop", "tier").expect("remove");
        assert_eq!(tags_of(&again, "shop").len(), 1);
        assert!(matches!(
            again.remove("shop", "tier"),
            Err(TagEditError::NotFound(_))
        ));
    }

    #[test]
    fn refused_edits_change_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let set = TagSet::open(vec![rule("category", "category")], dir.path()).expect("open");
        assert!(matches!(
            set.put("shop", rule("category", "x")),
            Err(TagEditError::InConfig(_))
        ));
        assert!(matches!(
            set.remove("shop", "category"),
            Err(TagEditError::InConfig(_))
        ));
        let mut bad = rule("tier", "tier");
        bad.regex = Some("(".into());
        assert!(matches!(
            set.put("shop", bad),
            Err(TagEditError::Invalid(_))
        ));
        let mut elsewhere = rule("tier", "tier");
        elsewhere.project = Some("other".into());
        assert!(matches!(
            set.put("shop", elsewhere),
            Err(TagEditError::Invalid(_))
        ));
        assert!(matches!(
            set.put("shop", rule(&"n".repeat(65), "x")),
            Err(TagEditError::Invalid(_))
        ));
        assert!(!dir.path().join(FILE).exists(), "nothing was written");
        for i in 0..MAX_RULES_PER_PROJECT {
            set.put("shop", rule(&format!("t{i}"), "tier"))
                .expect("put");
        }
        assert!(matches!(
            set.put("shop", rule("one-more", "tier")),
            Err(TagEditError::Invalid(_))
        ));
        assert!(matches!(
            TagSet::fixed(TagRules::default()).put("shop", rule("tier", "tier")),
            Err(TagEditError::NotManaged)
        ));
    }

    /// The workspace rules run after the user's: a run tagged `workspace`
    /// by a console rule keeps that value, one without gets the tenant id
    /// from either attribute, and an edit keeps the built-in rules.
    #[test]
    fn built_in_rules_run_last_and_survive_edits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let set = TagSet::open(vec![rule("category", "category")], dir.path())
            .expect("open")
            .with_builtin(loupe_normalise::tags::workspace_rules("workspace"))
            .expect("builtin");
        let workspace = |set: &TagSet, project: &str, attribute: &str| {
            let mut s = run(project);
            s.attributes.insert(attribute.into(), "t-1".into());
            set.current().apply(&mut s);
            s.tags.get("workspace").cloned()
        };
        assert_eq!(
            workspace(&set, "shop", "dify.tenant_id").as_deref(),
            Some("t-1")
        );
        assert_eq!(
            workspace(&set, "shop", "metadata.tenant_id").as_deref(),
            Some("t-1")
        );
        assert_eq!(workspace(&set, "shop", "tenant").as_deref(), None);
        assert_eq!(
            set.rules("shop")
                .iter()
                .map(|r| r.source)
                .collect::<Vec<_>>(),
            vec![RuleSource::Config, RuleSource::Builtin, RuleSource::Builtin]
        );
        // A console rule of the same name wins where it finds a value.
        set.put("shop", rule("workspace", "tier")).expect("put");
        assert_eq!(
            workspace(&set, "shop", "dify.tenant_id").as_deref(),
            Some("gold")
        );
        assert_eq!(
            workspace(&set, "other", "dify.tenant_id").as_deref(),
            Some("t-1")
        );
        set.remove("shop", "workspace").expect("remove");
        assert_eq!(
            workspace(&set, "shop", "dify.tenant_id").as_deref(),
            Some("t-1")
        );
        assert!(loupe_normalise::tags::workspace_rules("").is_empty());
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(FILE), b"{not json").expect("write");
        let err = TagSet::open(Vec::new(), dir.path()).expect_err("refused");
        assert!(err.to_string().contains(FILE), "{err}");
    }
}
