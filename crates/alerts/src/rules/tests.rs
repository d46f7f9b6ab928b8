//! Rule parsing: the seed's four examples as shipped in
//! `loupe.example.toml`, thresholds as written, and validation errors.

use super::{Metric, NoData, Op, RuleType};
use crate::AlertsConfig;

#[derive(serde::Deserialize)]
struct File {
    alerts: AlertsConfig,
}

fn example() -> AlertsConfig {
    let path = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../../loupe.example.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: toml::Value = toml::from_str(&text).unwrap_or_else(|e| panic!("example: {e}"));
    let table = v.get("alerts").cloned().unwrap_or(toml::Value::Integer(0));
    let file: File = toml::Value::Table([("alerts".to_owned(), table)].into_iter().collect())
        .try_into()
        .unwrap_or_else(|e| panic!("[alerts] parses: {e}"));
    file.alerts
}

#[test]
fn the_seeds_four_examples_parse_as_written_and_validate() {
    let cfg = example();
    cfg.validate(&["category".to_owned()])
        .unwrap_or_else(|e| panic!("validates: {e}"));
    let names: Vec<&str> = cfg.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "workflow-failure-rate",
            "inventory-avg-latency",
            "phone-success-rate",
            "tool-3-consecutive-failures"
        ]
    );
    let [fail, inv, phone, streak] = &cfg.rules[..] else {
        panic!("four rules");
    };
    assert_eq!(
        (fail.metric, fail.op, fail.threshold_value()),
        (Some(Metric::FailureRate), Op::Gt, Some(0.05))
    );
    assert_eq!(
        (inv.metric, inv.threshold_value()),
        (Some(Metric::AvgLatency), Some(1.0))
    );
    assert_eq!(
        inv.filters.get("tool_name").map(String::as_str),
        Some("inventory")
    );
    assert_eq!(
        (phone.metric, phone.op, phone.threshold_value()),
        (Some(Metric::SuccessRate), Op::Lt, Some(0.9))
    );
    assert_eq!(
        phone.filters.get("tags.category").map(String::as_str),
        Some("phone")
    );
    assert_eq!(
        (streak.kind, streak.consecutive, streak.actions.as_slice()),
        (RuleType::Event, 3, ["restart-plugin".to_owned()].as_slice())
    );
    assert_eq!(fail.no_data, NoData::Ok);
    assert_eq!(cfg.interval, std::time::Duration::from_secs(15));
}

#[test]
fn validation_names_the_problem() {
    let cfg = AlertsConfig::default();
    let labels = ["category".to_owned()];
    let bad = |t: &str| {
        let r: super::Rule = toml::from_str(t).unwrap_or_else(|e| panic!("{e}"));
        cfg.check_rule(&r, &labels)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(
        bad("name='a'\nmetric='failure_rate'\nthreshold='5%'\nfilters={'tags.brand'='x'}")
            .contains("[metrics] labels")
    );
    assert!(bad("name='a'\nmetric='count'\nthreshold='5%'").contains("rate metric"));
    assert!(bad("name='a'\nmetric='count'\nthreshold=1\nnotify=['nope']").contains("no channel"));
    assert!(bad("name='a'\ntype='event'").contains("group_by"));
    assert!(toml::from_str::<super::Rule>("name='a'\nmetrik='count'").is_err());
}

#[test]
fn a_threshold_window_longer_than_the_rollups_kept_is_refused() {
    let mut cfg = example();
    cfg.max_window = Some(std::time::Duration::from_secs(180 * 60));
    let labels = ["category".to_owned()];
    cfg.validate(&labels).expect("the examples fit in 3 h");
    let mut long = cfg.rules[0].clone();
    long.window = std::time::Duration::from_secs(4 * 3600);
    let err = cfg
        .check_rule(&long, &labels)
        .expect_err("4h > 3h")
        .to_string();
    assert!(
        err.contains("window 4h") && err.contains("3h") && err.contains("minutes_kept"),
        "{err}"
    );
    cfg.max_window = None;
    cfg.check_rule(&long, &labels)
        .expect("unchecked without a bound");
}

fn rule_json(v: serde_json::Value) -> super::Rule {
    serde_json::from_value(v).unwrap_or_else(|e| panic!("rule: {e}"))
}

#[test]
fn a_projects_rule_reads_only_its_project() {
    use loupe_rollup::RollupKey;
    let key = |project: &str| RollupKey {
        project: project.to_owned(),
        ..RollupKey::default()
    };
    let mut r = rule_json(serde_json::json!({
        "name": "r", "metric": "count", "threshold": 1,
        "filters": {"project": "!nobody"}
    }));
    // A config rule without a project: every project (the filter applies).
    let sel = super::filter::Selector::new(&r, &[]);
    assert!(sel.matches(&key("a")) && sel.matches(&key("b")));
    // With a project, only that project, whatever the filter said.
    r.project = Some("b".into());
    assert!(
        r.validate(&[]).is_err(),
        "a negated project filter reaches out"
    );
    r.filters.clear();
    r.validate(&[]).unwrap_or_else(|e| panic!("{e}"));
    let sel = super::filter::Selector::new(&r, &[]);
    assert!(sel.matches(&key("b")) && !sel.matches(&key("a")));
    assert_eq!(
        sel.fixed_labels().get("project").map(String::as_str),
        Some("b")
    );
    r.filters.insert("project".into(), "a".into());
    let err = r.validate(&[]).expect_err("reaches project a");
    assert!(
        err.to_string().contains("outside the rule's project"),
        "{err}"
    );
    r.filters.insert("project".into(), "b".into());
    assert!(r.validate(&[]).is_ok());
    // Two projects' rules of one name are two rules.
    let mut other = r.clone();
    other.project = Some("a".into());
    assert_ne!(r.id(), other.id());
}

#[test]
fn a_silence_needs_a_positive_matcher_and_mutes_its_project_only() {
    let silence = |matchers: serde_json::Value, project: Option<&str>| super::Silence {
        id: String::new(),
        project: project.map(str::to_owned),
        matchers: serde_json::from_value(matchers).unwrap_or_default(),
        starts_at: None,
        ends_at: chrono::DateTime::from_timestamp_millis(2_000).unwrap_or_default(),
        created_by: String::new(),
        comment: String::new(),
    };
    for bad in [
        serde_json::json!({}),
        serde_json::json!({"alertname": "!__none__"}),
        serde_json::json!({"alertname": ""}),
        serde_json::json!({"alertname": "!x", "severity": "!y"}),
    ] {
        assert!(silence(bad.clone(), None).validate().is_err(), "{bad}");
    }
    let s = silence(
        serde_json::json!({"alertname": "r", "tool_name": "!x"}),
        Some("a"),
    );
    s.validate().unwrap_or_else(|e| panic!("{e}"));
    let labels = |project: &str| -> std::collections::BTreeMap<String, String> {
        [("alertname", "r"), ("project", project)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    };
    assert!(s.mutes(&labels("a"), 1_000));
    assert!(!s.mutes(&labels("b"), 1_000));
}
