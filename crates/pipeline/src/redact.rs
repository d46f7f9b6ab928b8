//! PII redaction at ingest (`[redaction]`): rules applied to every span in
//! [`crate::Pipeline::write`], after the business-tag rules and before the
//! append, so a redacted value never reaches the WAL, a part, an index, a
//! rollup or an answer.
//!
//! A rule is one of:
//!
//! - `builtin`: a named pattern ([`Builtin`]: emails, phone numbers,
//!   Chinese mobile numbers, Chinese resident ID numbers, API keys and
//!   tokens, `Bearer`/`Basic` credentials);
//! - `regex`: a pattern of your own (Rust `regex` syntax);
//! - `attributes`: attribute names (exact, or a prefix ending in `*`) whose
//!   whole value is replaced;
//! - `json_paths`: paths into the JSON of `input` and `output`
//!   (`inputs.phone`, `messages.*.content`, `$.a[*].b`), whose values are
//!   replaced whatever their type.
//!
//! Patterns (builtin and regex) apply to `input`, `output`, the error
//! message, every attribute value and every business-tag value, after the
//! attribute and JSON-path rules. Ids
//! (trace, span, run, session, user) are join keys and are never changed.
//! A rule applies to the projects it lists (`projects`), or to all. Each
//! match becomes `replacement` (default `[REDACTED:<rule name>]`).

use std::borrow::Cow;

use loupe_model::Span;
use regex::{NoExpand, Regex, RegexSet};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `[redaction]` in `loupe.toml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedactionConfig {
    /// `[[redaction.rules]]`, applied in order.
    pub rules: Vec<RedactRuleConfig>,
}

/// One `[[redaction.rules]]` entry: a name, exactly one of `builtin`,
/// `regex`, `attributes`, `json_paths`, and optionally the projects it
/// applies to and the replacement text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedactRuleConfig {
    /// Names the rule in errors and in the default replacement.
    pub name: String,
    /// Projects the rule applies to; empty: every project.
    pub projects: Vec<String>,
    /// A named pattern.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub builtin: Option<Builtin>,
    /// A pattern of your own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// Attribute names (or prefixes ending in `*`) whose values are replaced.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<String>,
    /// Paths into `input`/`output` JSON whose values are replaced.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub json_paths: Vec<String>,
    /// What a match becomes. Default `[REDACTED:<name>]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
}

/// Built-in patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Builtin {
    /// `name@example.com`.
    Email,
    /// International numbers written with a leading `+` (E.164, with
    /// spaces, dots or dashes between digits).
    Phone,
    /// Mainland China mobile numbers: `13812345678`, `138-1234-5678`,
    /// `+86 13812345678`, `0086…`.
    CnMobile,
    /// 18-character resident identity card numbers (region, birth date,
    /// sequence, check digit or `X`).
    CnIdCard,
    /// API keys and tokens: `sk-…` (OpenAI, Loupe, many others), Dify
    /// `app-…`, AWS `AKIA…`, GitHub `ghp_…`, Slack `xox?-…`, Google
    /// `AIza…`, and JSON Web Tokens.
    ApiKey,
    /// `Bearer <token>` and `Basic <credentials>` as written in headers.
    BearerToken,
}

impl Builtin {
    fn pattern(self) -> &'static str {
        // `(?-u:\b)`: an ASCII word boundary, so a number right after a
        // Chinese character ("电话13812345678") still has a boundary.
        match self {
            Builtin::Email => r"(?i)[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}",
            Builtin::Phone => r"\+[1-9](?:[ .-]?[0-9]){6,14}(?-u:\b)",
            Builtin::CnMobile => {
                r"(?:(?:\+|00)86[ -]?|(?-u:\b)(?:86[ -]?)?)1[3-9][0-9](?:[ -]?[0-9]{4}){2}(?-u:\b)"
            }
            Builtin::CnIdCard => {
                r"(?-u:\b)[1-9][0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx](?-u:\b)"
            }
            Builtin::ApiKey => concat!(
                r"(?-u:\b)(?:",
                r"(?:sk|rk)-[A-Za-z0-9_-]{16,}",
                r"|app-[A-Za-z0-9]{20,}",
                r"|AKIA[0-9A-Z]{16}",
                r"|gh[pousr]_[A-Za-z0-9]{30,}",
                r"|xox[abprs]-[A-Za-z0-9-]{10,}",
                r"|AIza[0-9A-Za-z_-]{35}",
                r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
                r")"
            ),
            Builtin::BearerToken => r"(?i)(?-u:\b)(?:bearer|basic)[ \t]+[A-Za-z0-9._~+/=-]{8,}",
        }
    }
}

/// A `[redaction]` rule that cannot be used, named.
#[derive(Debug, thiserror::Error)]
#[error("redaction rule {name:?}: {reason}")]
pub struct RedactError {
    /// The rule's name.
    pub name: String,
    /// What is wrong.
    pub reason: String,
}

enum Kind {
    Pattern(Regex),
    Attributes(Vec<String>),
    JsonPaths(Vec<Vec<Segment>>),
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Key(String),
    Index(usize),
    Any,
}

struct Rule {
    projects: Vec<String>,
    replacement: String,
    kind: Kind,
}

/// The compiled rules. Cheap to share; [`Redactor::apply`] is pure.
#[derive(Default)]
pub struct Redactor {
    rules: Vec<Rule>,
    /// Every pattern rule at once: whether a text needs the pattern pass.
    any_pattern: Option<RegexSet>,
}

/// Longest path and most segments accepted in `json_paths`.
const MAX_PATH_SEGMENTS: usize = 32;

fn parse_path(text: &str) -> Result<Vec<Segment>, String> {
    let body = text.strip_prefix('$').unwrap_or(text);
    let body = body.strip_prefix('.').unwrap_or(body);
    let mut out = Vec::new();
    for part in body.split('.') {
        // `a[*]`, `a[0]`, `[*]`: a key then indexes.
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        match key {
            "" if rest.is_empty() => return Err(format!("empty segment in path {text:?}")),
            "" => {}
            "*" => out.push(Segment::Any),
            k => out.push(Segment::Key(k.to_owned())),
        }
        while let Some(inner) = rest.strip_prefix('[') {
            let Some(end) = inner.find(']') else {
                return Err(format!("unclosed [ in path {text:?}"));
            };
            let index = &inner[..end];
            out.push(match index {
                "*" => Segment::Any,
                i => Segment::Index(
                    i.parse()
                        .map_err(|_| format!("bad index [{i}] in path {text:?}"))?,
                ),
            });
            rest = &inner[end + 1..];
        }
        if !rest.is_empty() {
            return Err(format!("unexpected {rest:?} in path {text:?}"));
        }
    }
    if out.is_empty() || out.len() > MAX_PATH_SEGMENTS {
        return Err(format!(
            "path {text:?} must have 1 to {MAX_PATH_SEGMENTS} segments"
        ));
    }
    Ok(out)
}

/// Replaces every value `path` reaches in `v`; true if any was.
fn redact_path(v: &mut Value, path: &[Segment], replacement: &str) -> bool {
    let Some((first, rest)) = path.split_first() else {
        if *v == Value::String(replacement.to_owned()) {
            return false;
        }
        *v = Value::String(replacement.to_owned());
        return true;
    };
    match (first, v) {
        (Segment::Key(k), Value::Object(map)) => map
            .get_mut(k)
            .is_some_and(|child| redact_path(child, rest, replacement)),
        (Segment::Index(i), Value::Array(items)) => items
            .get_mut(*i)
            .is_some_and(|child| redact_path(child, rest, replacement)),
        (Segment::Any, Value::Object(map)) => map.values_mut().fold(false, |hit, child| {
            redact_path(child, rest, replacement) | hit
        }),
        (Segment::Any, Value::Array(items)) => items.iter_mut().fold(false, |hit, child| {
            redact_path(child, rest, replacement) | hit
        }),
        _ => false,
    }
}

impl Redactor {
    /// Compiles `[redaction]`; a rule without exactly one kind, with a bad
    /// pattern or path, or without a name is an error naming it.
    pub fn new(config: &RedactionConfig) -> Result<Self, RedactError> {
        let mut rules = Vec::with_capacity(config.rules.len());
        for (i, r) in config.rules.iter().enumerate() {
            let name = if r.name.trim().is_empty() {
                format!("#{}", i + 1)
            } else {
                r.name.clone()
            };
            let bad = |reason: String| RedactError {
                name: name.clone(),
                reason,
            };
            if r.name.trim().is_empty() {
                return Err(bad("needs a name".into()));
            }
            let kinds = usize::from(r.builtin.is_some())
                + usize::from(r.regex.is_some())
                + usize::from(!r.attributes.is_empty())
                + usize::from(!r.json_paths.is_empty());
            if kinds != 1 {
                return Err(bad(
                    "needs exactly one of builtin, regex, attributes, json_paths".into(),
                ));
            }
            let kind = if let Some(b) = r.builtin {
                Kind::Pattern(Regex::new(b.pattern()).map_err(|e| bad(e.to_string()))?)
            } else if let Some(re) = &r.regex {
                let re = regex::RegexBuilder::new(re)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| bad(format!("regex: {e}")))?;
                if re.is_match("") {
                    return Err(bad("regex matches the empty string".into()));
                }
                Kind::Pattern(re)
            } else if !r.attributes.is_empty() {
                if r.attributes.iter().any(|a| a.trim().is_empty() || a == "*") {
                    return Err(bad(
                        "attribute names must be non-empty (and not just `*`)".into()
                    ));
                }
                Kind::Attributes(r.attributes.clone())
            } else {
                Kind::JsonPaths(
                    r.json_paths
                        .iter()
                        .map(|p| parse_path(p))
                        .collect::<Result<_, _>>()
                        .map_err(bad)?,
                )
            };
            rules.push(Rule {
                projects: r.projects.clone(),
                replacement: r
                    .replacement
                    .clone()
                    .unwrap_or_else(|| format!("[REDACTED:{name}]")),
                kind,
            });
        }
        let sources: Vec<&str> = rules
            .iter()
            .filter_map(|r| match &r.kind {
                Kind::Pattern(re) => Some(re.as_str()),
                _ => None,
            })
            .collect();
        let any_pattern = if sources.is_empty() {
            None
        } else {
            Some(
                regex::RegexSetBuilder::new(&sources)
                    .size_limit(16 << 20)
                    .build()
                    .map_err(|e| RedactError {
                        name: "(all patterns together)".into(),
                        reason: e.to_string(),
                    })?,
            )
        };
        Ok(Self { rules, any_pattern })
    }

    /// Whether there are no rules (the pipeline skips the pass).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Redacts one span in place; returns how many values changed.
    /// Whole-value rules (attributes, JSON paths) run first, in order; then
    /// the patterns, in order, on every text field that any pattern
    /// matches (one pass of all patterns together decides that, so text
    /// without PII, the common case, is read once).
    pub fn apply(&self, span: &mut Span) -> usize {
        let applies =
            |rule: &Rule| rule.projects.is_empty() || rule.projects.contains(&span.project);
        let mut changed = 0;
        for rule in self.rules.iter().filter(|r| applies(r)) {
            changed += match &rule.kind {
                Kind::Pattern(_) => 0,
                Kind::Attributes(names) => {
                    redact_named(names, &rule.replacement, &mut span.attributes)
                }
                Kind::JsonPaths(paths) => {
                    let mut n = 0;
                    for field in [&mut span.input, &mut span.output].into_iter().flatten() {
                        // A path's first key must appear as a JSON key: most
                        // texts are ruled out without parsing them.
                        if !paths.iter().any(|p| match p.first() {
                            Some(Segment::Key(k)) => field.contains(k.as_str()),
                            _ => true,
                        }) {
                            continue;
                        }
                        // Not JSON (plain text): nothing for a path to reach.
                        let Ok(mut v) = serde_json::from_str::<Value>(field) else {
                            continue;
                        };
                        let hit = paths.iter().fold(false, |hit, p| {
                            redact_path(&mut v, p, &rule.replacement) | hit
                        });
                        if hit && let Ok(text) = serde_json::to_string(&v) {
                            *field = text;
                            n += 1;
                        }
                    }
                    n
                }
            };
        }
        let Some(pass) = self.pattern_pass(&span.project) else {
            return changed;
        };
        for field in [&mut span.input, &mut span.output, &mut span.error_message]
            .into_iter()
            .flatten()
        {
            changed += pass.apply(field);
        }
        for value in span.attributes.values_mut().chain(span.tags.values_mut()) {
            changed += pass.apply(value);
        }
        changed
    }

    /// The patterns that apply to `project`, in order (`None` when there
    /// are none).
    fn pattern_pass(&self, project: &str) -> Option<PatternPass<'_>> {
        let any = self.any_pattern.as_ref()?;
        let patterns: Vec<(&Regex, &str)> = self
            .rules
            .iter()
            .filter(|r| r.projects.is_empty() || r.projects.iter().any(|p| p == project))
            .filter_map(|r| match &r.kind {
                Kind::Pattern(re) => Some((re, r.replacement.as_str())),
                _ => None,
            })
            .collect();
        (!patterns.is_empty()).then_some(PatternPass { any, patterns })
    }
}

/// The pattern rules of one record, run over its text values.
struct PatternPass<'a> {
    /// All patterns at once: text no pattern matches is read once.
    any: &'a RegexSet,
    patterns: Vec<(&'a Regex, &'a str)>,
}

impl PatternPass<'_> {
    /// Replaces every pattern's matches in `slot`; returns how many
    /// patterns changed it.
    fn apply(&self, slot: &mut String) -> usize {
        if !self.any.is_match(slot) {
            return 0;
        }
        let mut changed = 0;
        for (re, replacement) in &self.patterns {
            if let Cow::Owned(new) = re.replace_all(slot, NoExpand(replacement)) {
                *slot = new;
                changed += 1;
            }
        }
        changed
    }
}

/// Replaces the values of the attributes `names` names (`prefix*` for a
/// prefix); returns how many changed.
fn redact_named<'a>(
    names: &[String],
    replacement: &str,
    attributes: impl IntoIterator<Item = (&'a String, &'a mut String)>,
) -> usize {
    let mut n = 0;
    for (key, value) in attributes {
        let hit = names.iter().any(|name| match name.strip_suffix('*') {
            Some(prefix) => key.starts_with(prefix),
            None => key == name,
        });
        if hit && *value != replacement {
            *value = replacement.to_owned();
            n += 1;
        }
    }
    n
}

impl Redactor {
    /// Redacts one log record in place, by the same rules as a span: names
    /// match its attributes, JSON paths reach into a JSON body, patterns
    /// run over the body and every attribute value. Returns how many
    /// values changed.
    pub fn apply_log(&self, record: &mut loupe_model::LogRecord) -> usize {
        let applies =
            |rule: &Rule| rule.projects.is_empty() || rule.projects.contains(&record.project);
        let mut changed = 0;
        for rule in self.rules.iter().filter(|r| applies(r)) {
            match &rule.kind {
                Kind::Pattern(_) => {}
                Kind::Attributes(names) => {
                    changed += redact_named(names, &rule.replacement, &mut record.attributes);
                }
                Kind::JsonPaths(paths) => {
                    if let Ok(mut v) = serde_json::from_str::<Value>(&record.body) {
                        let hit = paths.iter().fold(false, |hit, p| {
                            redact_path(&mut v, p, &rule.replacement) | hit
                        });
                        if hit && let Ok(text) = serde_json::to_string(&v) {
                            record.body = text;
                            changed += 1;
                        }
                    }
                }
            }
        }
        let Some(pass) = self.pattern_pass(&record.project) else {
            return changed;
        };
        changed += pass.apply(&mut record.body);
        for value in record.attributes.values_mut() {
            changed += pass.apply(value);
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor(rules: serde_json::Value) -> Redactor {
        let config: RedactionConfig =
            serde_json::from_value(serde_json::json!({ "rules": rules })).expect("config");
        Redactor::new(&config).unwrap_or_else(|e| panic!("{e}"))
    }

    fn builtin(name: &str) -> Redactor {
        redactor(serde_json::json!([{ "name": name, "builtin": name }]))
    }

    /// (builtin, text, expected) cases: what each pattern takes and leaves.
    #[test]
    fn builtin_patterns_take_what_they_name_and_leave_the_rest() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "email",
                "mail me: Li.Lei+x@corp.example.cn!",
                "mail me: [REDACTED:email]!",
            ),
            ("email", "no at sign here", "no at sign here"),
            (
                "cn_mobile",
                "电话13812345678请回电",
                "电话[REDACTED:cn_mobile]请回电",
            ),
            (
                "cn_mobile",
                "call 138-1234-5678 or +86 139 1234 5678",
                "call [REDACTED:cn_mobile] or [REDACTED:cn_mobile]",
            ),
            ("cn_mobile", "8613812345678", "[REDACTED:cn_mobile]"),
            (
                "cn_mobile",
                "order 2138123456789 and 12812345678",
                "order 2138123456789 and 12812345678",
            ),
            (
                "cn_id_card",
                "身份证号11010519491231002X。",
                "身份证号[REDACTED:cn_id_card]。",
            ),
            (
                "cn_id_card",
                "id 110105194912310021",
                "id [REDACTED:cn_id_card]",
            ),
            (
                "cn_id_card",
                "not a date 110105194913310021",
                "not a date 110105194913310021",
            ),
            (
                "phone",
                "ring +44 20 7946 0958 now",
                "ring [REDACTED:phone] now",
            ),
            (
                "phone",
                "version 1.2.3, 12345678",
                "version 1.2.3, 12345678",
            ),
            (
                "api_key",
                "key sk-proj-abcdefghijklmnop1234 ok",
                "key [REDACTED:api_key] ok",
            ),
            (
                "api_key",
                "dify app-abcdefghijklmnopqrstuvwx",
                "dify [REDACTED:api_key]",
            ),
            (
                "api_key",
                "aws AKIAABCDEFGHIJKLMNOP",
                "aws [REDACTED:api_key]",
            ),
            (
                "api_key",
                "task-abcdefghijklmnopqrstuvwxyz",
                "task-abcdefghijklmnopqrstuvwxyz",
            ),
            (
                "bearer_token",
                "Authorization: Bearer abc.def-123456",
                "Authorization: [REDACTED:bearer_token]",
            ),
            (
                "bearer_token",
                "basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
                "[REDACTED:bearer_token]",
            ),
            ("bearer_token", "a bearer of news", "a bearer of news"),
        ];
        for (name, text, want) in cases {
            let mut span = Span::new("p", "s");
            span.input = Some((*text).to_owned());
            builtin(name).apply(&mut span);
            assert_eq!(span.input.as_deref(), Some(*want), "{name}: {text}");
        }
    }

    #[test]
    fn patterns_reach_every_text_field_and_ids_stay() {
        let r = redactor(serde_json::json!([
            { "name": "email", "builtin": "email" },
            { "name": "order", "regex": "ORD-[0-9]{6}", "replacement": "ORD-******" },
        ]));
        let mut span = Span::new("p", "s");
        span.user_id = Some("u@example.com".into());
        span.input = Some(r#"{"q":"ORD-123456 for a@b.co"}"#.into());
        span.output = Some("sent to a@b.co".into());
        span.error_message = Some("smtp refused a@b.co".into());
        span.attributes
            .insert("http.url".into(), "mailto:a@b.co".into());
        span.tags.insert("customer".into(), "a@b.co".into());
        let n = r.apply(&mut span);
        assert_eq!(n, 6, "{span:?}");
        let all = format!("{span:?}");
        assert!(!all.contains("a@b.co") && !all.contains("123456"), "{all}");
        assert_eq!(
            span.input.as_deref(),
            Some(r#"{"q":"ORD-****** for [REDACTED:email]"}"#)
        );
        assert_eq!(
            span.user_id.as_deref(),
            Some("u@example.com"),
            "ids are join keys"
        );
    }

    #[test]
    fn attribute_and_json_path_rules_replace_whole_values() {
        let r = redactor(serde_json::json!([
            { "name": "headers", "attributes": ["http.request.header.*", "user.phone"] },
            { "name": "fields", "json_paths": ["inputs.phone", "$.messages[*].content", "a[1]"] },
        ]));
        let mut span = Span::new("p", "s");
        span.attributes
            .insert("http.request.header.cookie".into(), "sid=1".into());
        span.attributes.insert("user.phone".into(), "555".into());
        span.attributes.insert("user.name".into(), "kept".into());
        span.input = Some(
            r#"{"inputs":{"phone":13800000000,"city":"Beijing"},"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":{"x":1}}]}"#.into(),
        );
        span.output = Some(r#"{"a":["keep","drop"]}"#.into());
        r.apply(&mut span);
        assert_eq!(
            span.attributes["http.request.header.cookie"],
            "[REDACTED:headers]"
        );
        assert_eq!(span.attributes["user.phone"], "[REDACTED:headers]");
        assert_eq!(span.attributes["user.name"], "kept");
        let input: Value = serde_json::from_str(span.input.as_deref().unwrap_or("")).expect("json");
        assert_eq!(input["inputs"]["phone"], "[REDACTED:fields]");
        assert_eq!(input["inputs"]["city"], "Beijing");
        assert_eq!(input["messages"][0]["content"], "[REDACTED:fields]");
        assert_eq!(input["messages"][1]["content"], "[REDACTED:fields]");
        assert_eq!(input["messages"][1]["role"], "assistant");
        assert_eq!(
            span.output.as_deref(),
            Some(r#"{"a":["keep","[REDACTED:fields]"]}"#)
        );
        // Plain text and unmatched JSON are left byte for byte.
        let mut plain = Span::new("p", "s2");
        plain.input = Some("inputs.phone is not JSON".into());
        plain.output = Some("{ \"other\": 1 }".into());
        assert_eq!(r.apply(&mut plain), 0);
        assert_eq!(plain.output.as_deref(), Some("{ \"other\": 1 }"));
    }

    #[test]
    fn rules_apply_to_their_projects_only() {
        let r = redactor(serde_json::json!([
            { "name": "email", "builtin": "email", "projects": ["bank"] },
        ]));
        let mut bank = Span::new("bank", "s");
        bank.input = Some("a@b.co".into());
        let mut shop = Span::new("shop", "s");
        shop.input = Some("a@b.co".into());
        r.apply(&mut bank);
        r.apply(&mut shop);
        assert_eq!(bank.input.as_deref(), Some("[REDACTED:email]"));
        assert_eq!(shop.input.as_deref(), Some("a@b.co"));
    }

    #[test]
    fn bad_rules_are_refused_by_name() {
        for (rule, needle) in [
            (serde_json::json!({"name": "x"}), "exactly one"),
            (
                serde_json::json!({"name": "x", "builtin": "email", "regex": "a"}),
                "exactly one",
            ),
            (serde_json::json!({"name": "x", "regex": "("}), "regex"),
            (
                serde_json::json!({"name": "x", "regex": "a*"}),
                "empty string",
            ),
            (
                serde_json::json!({"name": "x", "json_paths": ["a..b"]}),
                "empty segment",
            ),
            (
                serde_json::json!({"name": "x", "json_paths": ["a[x]"]}),
                "bad index",
            ),
            (
                serde_json::json!({"name": "x", "attributes": ["*"]}),
                "attribute",
            ),
            (serde_json::json!({"builtin": "email"}), "name"),
        ] {
            let config: RedactionConfig =
                serde_json::from_value(serde_json::json!({ "rules": [rule] })).expect("config");
            let err = Redactor::new(&config).err().expect("refused");
            assert!(err.to_string().contains(needle), "{err}");
        }
    }
}
