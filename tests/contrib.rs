//! contrib/: the Prometheus alerts and the Grafana dashboard, checked against the metrics
//! the daemon really serves, so that renaming a metric breaks this test and not a pager.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn contrib(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib").join(rel)
}

fn promtool(args: &[&str]) -> String {
    let bin = Path::new("/usr/bin/promtool");
    assert!(bin.exists(), "promtool is not installed (Debian package prometheus); run scripts/install-test-deps");
    let out = Command::new(bin).args(args).current_dir(contrib("prometheus")).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {}:\n{said}", args.join(" "));
    said
}

/// Every `kmsdns_…` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("kmsdns_") {
        let tail = &rest[i..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

/// The families the daemon serves, from its exposition's `# TYPE` lines.
fn served() -> BTreeSet<String> {
    kmsdns::daemon::metrics::Metrics::default()
        .render()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next().map(String::from))
        .collect()
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    let said = promtool(&["check", "rules", "kmsdns.rules.yml"]);
    assert!(said.contains("SUCCESS: 4 rules found"), "{said}");
    promtool(&["test", "rules", "kmsdns.rules.test.yml"]);
}

#[test]
fn the_alerts_and_the_dashboard_use_only_metrics_the_daemon_serves() {
    let served = served();
    let rules = std::fs::read_to_string(contrib("prometheus/kmsdns.rules.yml")).unwrap();
    let dashboard = std::fs::read_to_string(contrib("grafana/kmsdns.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    assert_eq!(json["uid"], "kmsdns");
    for (file, text) in [("kmsdns.rules.yml", &rules), ("kmsdns.json", &dashboard)] {
        let used = metric_names(text);
        assert!(!used.is_empty(), "{file} uses no kmsdns metric");
        let unknown: Vec<_> = used.difference(&served).collect();
        assert!(unknown.is_empty(), "{file} uses metrics the daemon does not serve: {unknown:?}\nserved: {served:?}");
    }
    for alert in ["KmsdnsCriticalFindings", "KmsdnsServerUnreadable", "KmsdnsNoHealthyKmsHost", "KmsdnsNotCycling"] {
        assert!(rules.contains(&format!("alert: {alert}")), "{alert}");
    }
}
