//! Alerting end to end: a REAL Alertmanager (Debian package, started here
//! on free loopback ports with a temp storage dir) receives an alert the
//! Loupe engine fires from rollups, read back from `GET /api/v2/alerts`;
//! and the engine's state survives a restart with an action audited.
//! Run `scripts/peers/alertmanager.sh` and export what it prints.

use std::sync::Arc;
use std::time::Duration;

use crate::support::free_port;
use loupe_alerts::{AlertsConfig, Engine, ManualClock};
use loupe_model::{Span, SpanKind, Status};
use loupe_rollup::{RollupConfig, Rollups};

const T0: i64 = 1_800_000_000_000;

fn rollups_with_failures(at_ms: i64) -> Rollups {
    let mut r = Rollups::new(RollupConfig::default());
    for i in 0..10 {
        let mut s = Span::new("p", format!("w{i}"));
        s.span_kind = Some(SpanKind::Workflow);
        s.status = Some(if i < 3 { Status::Error } else { Status::Ok });
        s.start_time = Some((at_ms - 100) * 1_000_000);
        s.end_time = Some(at_ms * 1_000_000);
        r.apply(None, &s);
    }
    r
}

struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_alertmanager_receives_loupes_alert() {
    let Ok(bin) = std::env::var("LOUPE_TEST_ALERTMANAGER") else {
        panic!(
            "LOUPE_TEST_ALERTMANAGER is not set: run scripts/peers/alertmanager.sh and export what it prints"
        );
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("am.yml");
    std::fs::write(
        &conf,
        "route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n",
    )
    .expect("am.yml");
    let port = free_port();
    let child = std::process::Command::new(&bin)
        .arg(format!("--config.file={}", conf.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start alertmanager");
    let _guard = Kill(child);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..100 {
        if http
            .get(format!("{base}/-/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "alertmanager did not become ready on {base}");

    let now = chrono::Utc::now().timestamp_millis();
    let config: AlertsConfig = toml::from_str(&format!(
        "[[channels]]\nname='am'\ntype='alertmanager'\nurl='{base}'\n\
         [[rules]]\nname='workflow-failure-rate'\nmetric='failure_rate'\nthreshold='5%'\nseverity='critical'\nfilters={{span_kind='workflow'}}\nnotify=['am']\n"
    ))
    .expect("config");
    let roll = rollups_with_failures(now - 1000);
    let engine = Engine::open(
        config,
        vec!["category".into()],
        None,
        Arc::new(move || roll.clone()),
        Arc::new(ManualClock::new(now)),
    )
    .expect("engine");
    let sent = engine.tick().await;
    assert_eq!(
        sent.iter().map(|d| d.result.as_str()).collect::<Vec<_>>(),
        ["sent"],
        "{sent:?}"
    );

    let alerts: serde_json::Value = http
        .get(format!("{base}/api/v2/alerts"))
        .send()
        .await
        .expect("get alerts")
        .json()
        .await
        .expect("json");
    let a = alerts
        .as_array()
        .and_then(|v| {
            v.iter()
                .find(|a| a["labels"]["alertname"] == "workflow-failure-rate")
        })
        .unwrap_or_else(|| panic!("alert not in Alertmanager: {alerts}"));
    assert_eq!(a["labels"]["severity"], "critical");
    assert_eq!(a["labels"]["span_kind"], "workflow");
    assert_eq!(a["annotations"]["value"], "30.00%");
    assert_eq!(a["status"]["state"], "active");
    assert!(
        a["generatorURL"]
            .as_str()
            .unwrap_or_default()
            .contains("/api/v1/spans?span_kind=workflow&status=error")
    );
}

#[tokio::test]
async fn pending_state_survives_a_restart_and_actions_are_audited() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("ran");
    let config: AlertsConfig = toml::from_str(&format!(
        "[[actions]]\nname='script'\ntype='command'\ncommand=['sh','-c','echo \"$LOUPE_ALERT_RULE $LOUPE_ALERT_STATE\" > {}']\n\
         [[rules]]\nname='r'\nmetric='failure_rate'\nthreshold='5%'\nfor='1m'\nactions=['script']\n",
        marker.display()
    ))
    .expect("config");
    let clock = Arc::new(ManualClock::new(T0));
    let roll = rollups_with_failures(T0 - 1000);
    let open = |clock: Arc<ManualClock>| {
        let roll = roll.clone();
        Engine::open(
            config.clone(),
            vec!["category".into()],
            Some(dir.path()),
            Arc::new(move || roll.clone()),
            clock,
        )
        .expect("engine")
    };
    assert!(open(clock.clone()).tick().await.is_empty(), "pending");
    clock.advance(Duration::from_secs(61));
    let again = open(clock.clone());
    let out = again.tick().await;
    assert_eq!(
        out.iter()
            .map(|d| (d.target.as_str(), d.result.as_str()))
            .collect::<Vec<_>>(),
        [("script", "ok")]
    );
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap_or_default().trim(),
        "r firing"
    );
    let audit = std::fs::read_to_string(dir.path().join("alerts-audit.jsonl")).expect("audit log");
    let line: serde_json::Value =
        serde_json::from_str(audit.lines().next().unwrap_or("")).expect("json line");
    assert_eq!(
        (
            line["action"].as_str(),
            line["outcome"].as_str(),
            line["exit_code"].as_i64()
        ),
        (Some("script"), Some("ok"), Some(0))
    );
    assert!(dir.path().join("alerts.json").exists());
}
