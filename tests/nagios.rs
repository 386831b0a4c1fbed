//! `kmsdns --audit --format nagios` as Nagios or Icinga runs it: one line on stdout, the
//! performance data that graphs are drawn from, and the plugin exit code.

mod support;

use support::Estate;
use support::run::{kmsdns, show};

/// The status text and the perfdata of a plugin line, split at `|`.
fn split(line: &str) -> (&str, Vec<(&str, &str)>) {
    let (text, perf) = line.split_once(" | ").unwrap_or_else(|| panic!("no perfdata in {line:?}"));
    let perf = perf
        .split(' ')
        .map(|p| p.split_once('=').unwrap_or_else(|| panic!("bad perfdata item {p:?} in {line:?}")))
        .collect();
    (text, perf)
}

#[test]
fn the_check_is_one_critical_line_with_perfdata_that_matches_the_audit() {
    let estate = Estate::every_finding();
    let inv = estate.inventory.to_str().expect("utf-8 path");
    let json = kmsdns(&["audit", "--config", inv, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap_or_else(|_| panic!("{}", show(&json)));
    let s = &v["summary"];
    let up = v["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["probes"].as_array().unwrap().iter().any(|p| p["state"] == "kms-up"))
        .count();

    let out = kmsdns(&["--audit", "--config", inv, "--format", "nagios"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(stdout.matches('\n').count(), 1, "exactly one line:\n{}", show(&out));
    let (text, perf) = split(stdout.trim_end());
    assert_eq!(
        text,
        format!(
            "KMSDNS CRITICAL - {} critical, {} warning in {} zones (1 server unreadable)",
            s["critical"], s["warning"], s["zones"]
        )
    );
    let names: Vec<&str> = perf.iter().map(|(k, _)| *k).collect();
    assert_eq!(names, ["critical", "warning", "zones", "servers_unreadable", "targets_up", "time"]);
    let value = |k: &str| perf.iter().find(|(n, _)| *n == k).map(|(_, v)| *v).unwrap();
    assert_eq!(value("critical"), format!("{};;;0", s["critical"]));
    assert_eq!(value("warning"), format!("{};;;0", s["warning"]));
    assert_eq!(value("zones"), "4;;;0");
    assert_eq!(value("servers_unreadable"), "1;;;0");
    assert_eq!(value("targets_up"), format!("{up};;;0"));
    assert!(up > 0, "the estate has live KMS hosts");
    let time = value("time");
    let secs: f64 = time.strip_suffix("s;;;0").and_then(|t| t.parse().ok()).unwrap_or_else(|| panic!("{time}"));
    assert!(secs > 0.0 && secs < 60.0, "{time}");
}

#[test]
fn an_invalid_configuration_is_one_unknown_line_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kmsdns.toml");
    std::fs::write(&path, "[[zone]]\nname = \"corp.test\"\nservers = [\"1.2.3.4:0\"]\nbogus = 1\n").unwrap();
    let out = kmsdns(&["audit", "--config", path.to_str().unwrap(), "--format", "nagios"]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(stdout.matches('\n').count(), 1, "{}", show(&out));
    assert!(stdout.starts_with("KMSDNS UNKNOWN - invalid configuration: "), "{}", show(&out));
    assert!(stdout.contains("kmsdns.toml:"), "names the file: {stdout}");
    assert!(!stdout.contains('|'), "no perfdata for an audit that did not run: {stdout}");
}

#[test]
fn other_commands_refuse_the_nagios_format() {
    let out = kmsdns(&["journal", "--config", "/nonexistent.toml", "--format", "nagios"]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--format nagios is the audit's check line"),
        "{}",
        show(&out)
    );
}
