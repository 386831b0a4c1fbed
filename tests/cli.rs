//! End to end: the `kmsdns` binary against real BIND servers and KMS responders, asserted on
//! what an admin or a monitoring system sees: the JSON, the text, the exit code.

mod support;

use std::collections::BTreeSet;
use std::process::Output;

use serde_json::Value;
use support::run::kmsdns;
use support::{BindLab, Estate, ZoneSpec, free_port, loopback_ip};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", stdout(o), stderr(o)))
}

/// (code, zone, server, target) of every finding in an audit's JSON.
fn findings(v: &Value) -> BTreeSet<(String, String, String, String)> {
    let s = |f: &Value, k: &str| f.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    v["findings"]
        .as_array()
        .expect("findings is an array")
        .iter()
        .map(|f| (s(f, "code"), s(f, "zone"), s(f, "server"), s(f, "target")))
        .collect()
}

fn row(code: &str, zone: &str, server: &str, target: &str) -> (String, String, String, String) {
    (code.into(), zone.into(), server.into(), target.into())
}

#[test]
fn the_audit_reports_every_finding_code_and_exits_critical() {
    let estate = Estate::every_finding();
    let inv = estate.inventory.to_str().expect("utf-8 path");
    let out = kmsdns(&["audit", "--config", inv, "--format", "json"]);
    assert_eq!(out.status.code(), Some(2), "{}\n{}", stdout(&out), stderr(&out));
    let v = json(&out);
    assert_eq!(v["schema"], 1);
    let gone = estate.gone.to_string();
    let want: BTreeSet<_> = [
        row("stale-decommissioned", "corp.test", "", "old.corp.test"),
        row("stale-unknown-host", "corp.test", "", "rogue.corp.test"),
        row("stale-unresolvable", "corp.test", "", "ghost.corp.test"),
        row("stale-dead", "corp.test", "", "kms2.corp.test"),
        row("not-kms", "corp.test", "", "web.corp.test"),
        row("record-drift", "corp.test", "", "kms4.corp.test"),
        row("missing-record", "corp.test", "", "kms3.corp.test"),
        row("server-divergence", "branch.test", "", ""),
        row("stale-dead", "lab.test", "", "lab1.corp.test"),
        row("no-healthy-host", "lab.test", "", ""),
        row("server-unreachable", "gone.test", &gone, ""),
    ]
    .into_iter()
    .collect();
    assert_eq!(findings(&v), want, "{}", stdout(&out));

    // Severities and the summary agree with the findings.
    let sev = |code: &str| {
        v["findings"].as_array().unwrap().iter().find(|f| f["code"] == code).map(|f| f["severity"].clone()).unwrap()
    };
    assert_eq!(sev("stale-dead"), "critical");
    assert_eq!(sev("stale-unknown-host"), "warning");
    assert_eq!(sev("record-drift"), "warning");
    assert_eq!(sev("server-divergence"), "warning");
    assert_eq!(v["summary"]["critical"], 8);
    assert_eq!(v["summary"]["warning"], 3);
    assert_eq!(v["summary"]["exit_code"], 2);
    assert_eq!(v["summary"]["servers_unreadable"], 1);

    // Each server's answer is shown, and the failed one is marked failed, not empty.
    let zones = v["zones"].as_array().unwrap();
    let corp = &zones[0];
    assert_eq!(corp["zone"], "corp.test");
    for s in corp["servers"].as_array().unwrap() {
        assert_eq!(s["outcome"], "records");
        assert_eq!(s["records"].as_array().unwrap().len(), 7);
        assert_eq!(s["serial"], 1);
    }
    let branch: Vec<usize> =
        zones[1]["servers"].as_array().unwrap().iter().map(|s| s["records"].as_array().unwrap().len()).collect();
    assert_eq!(branch, vec![2, 1]);
    let gone_server = &zones[3]["servers"][0];
    assert_eq!(gone_server["outcome"], "failed");
    assert!(gone_server["error"]["kind"].is_string());

    // Every target carries its probe state.
    let target = |name: &str| v["targets"].as_array().unwrap().iter().find(|t| t["name"] == name).cloned().unwrap();
    assert_eq!(target("kms1.corp.test")["probes"][0]["state"], "kms-up");
    assert_eq!(target("kms2.corp.test")["probes"][0]["state"], "down");
    assert_eq!(target("web.corp.test")["probes"][0]["state"], "not-kms");
    assert_eq!(target("ghost.corp.test")["resolution"], "no-address");
}

#[test]
fn the_text_report_is_grouped_by_zone_and_fits_100_columns() {
    let estate = Estate::every_finding();
    let inv = estate.inventory.to_str().expect("utf-8 path");
    let out = kmsdns(&["--audit", "--config", inv]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.contains('\x1b'), "no colour when stdout is not a terminal");
    assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
    let zone_lines: Vec<&str> = text.lines().filter(|l| l.starts_with("zone ")).collect();
    assert_eq!(zone_lines, ["zone corp.test", "zone branch.test", "zone lab.test", "zone gone.test"]);
    for expect in [
        "CRITICAL stale-dead",
        "WARNING  stale-unknown-host",
        "fix: delete `_vlmcs._tcp.corp.test. IN SRV 0 0 1688 kms2.corp.test.`",
        "SRV 5 0 1688 kms4.corp.test.",
        "unreadable:",
        "8 critical, 3 warning, 0 info in 4 zone(s)",
    ] {
        assert!(text.contains(expect), "missing {expect:?} in:\n{text}");
    }
}

#[test]
fn a_healthy_estate_exits_zero() {
    let (kms, kms_port) = loopback_ip();
    let _responder =
        kmsdns::demo::responder::KmsResponder::from_listener(kms_port, kmsdns::demo::responder::Behaviour::Kms)
            .expect("start a KMS responder");
    let zone = ZoneSpec::new("ok.test")
        .record(&format!("kms1 3600 IN A {kms}"))
        .record("_vlmcs._tcp 3600 IN SRV 0 0 1688 kms1.ok.test.");
    let lab = BindLab::primary_secondary(&[zone]);
    let servers: Vec<String> = lab.servers.iter().map(|s| format!("\"{}\"", s.addr)).collect();
    let inv = lab.dir.path().join("ok.toml");
    std::fs::write(
        &inv,
        format!(
            "[[zone]]\nname = \"ok.test\"\nservers = [{}]\n\n[[host]]\nname = \"kms1.ok.test\"\nzones = [\"ok.test\"]\nstate = \"active\"\n",
            servers.join(", ")
        ),
    )
    .unwrap();
    let out = kmsdns(&["audit", "-c", inv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("ok: no findings"));
    let out = kmsdns(&["audit", "-c", inv.to_str().unwrap(), "--format", "json"]);
    assert_eq!(json(&out)["findings"], Value::Array(vec![]));
}

#[test]
fn a_bad_config_exits_3_naming_file_line_column_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[[zone]]\nname = \"a.test\"\nservers = [\"127.0.0.1\"]\n\n[[host]]\nname = \"k.a.test\"\nzones = [\"b.test\"]\nstate = \"active\"\n").unwrap();
    let p = path.to_str().unwrap();
    for args in [
        vec!["check-config", "--config", p],
        vec!["--audit", "--config", p],
        vec!["audit", "-c", p, "--format", "json"],
    ] {
        let out = kmsdns(&args);
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains(&format!("{p}:7:10: host[0].zones[0]: the zone 'b.test' is not declared")), "{err}");
        assert!(stdout(&out).is_empty(), "nothing on stdout for a config error: {}", stdout(&out));
    }
    let out = kmsdns(&["check-config", "--config", "/nonexistent/kmsdns.toml"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("/nonexistent/kmsdns.toml: cannot read the file"), "{}", stderr(&out));
}

#[test]
fn a_good_config_is_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("good.toml");
    std::fs::write(&path, format!("[[zone]]\nname = \"a.test\"\nservers = [\"127.0.0.1:{}\"]\n", free_port())).unwrap();
    let out = kmsdns(&["check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("valid (1 zone(s), 0 host(s), 0 key(s))"), "{}", stdout(&out));
}

#[test]
fn the_shipped_example_config_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/kmsdns.toml");
    // As shipped, it names a key file this machine does not have: that, and only that, is reported.
    let out = kmsdns(&["check-config", "--config", path]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("key 'kmsdns': cannot read /etc/kmsdns/kmsdns.key"), "{}", stderr(&out));
    // With the key file in place it is valid.
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("kmsdns.key");
    std::fs::write(&key, "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA==\n").unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let text = std::fs::read_to_string(path).unwrap().replace("/etc/kmsdns/kmsdns.key", key.to_str().unwrap());
    let copy = dir.path().join("kmsdns.toml");
    std::fs::write(&copy, text).unwrap();
    let out = kmsdns(&["check-config", "--config", copy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("valid (2 zone(s), 3 host(s), 1 key(s))"), "{}", stdout(&out));
}

#[test]
fn bad_arguments_exit_3_and_help_exits_0() {
    assert_eq!(kmsdns(&["--format", "yaml", "audit"]).status.code(), Some(3));
    assert_eq!(kmsdns(&["frobnicate"]).status.code(), Some(3));
    assert_eq!(kmsdns(&[]).status.code(), Some(3));
    let help = kmsdns(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    for word in ["audit", "check-config", "demo", "--format", "--config", "Exit codes"] {
        assert!(stdout(&help).contains(word), "--help lacks {word}");
    }
}

#[test]
fn the_demo_audits_plans_repairs_and_audits_clean() {
    let out = kmsdns(&["demo", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("WARN"), "{}", stderr(&out));
    let v = json(&out);
    let codes: BTreeSet<(String, String)> = v["before"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["code"].as_str().unwrap().to_string(), f["target"].as_str().unwrap_or("").to_string()))
        .collect();
    let want: BTreeSet<(String, String)> = [
        ("stale-decommissioned", "kms-old.demo.test"),
        ("stale-dead", "kms2.demo.test"),
        ("stale-unknown-host", "desk42.demo.test"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(codes, want);
    assert_eq!(v["before"]["zones"][0]["servers"].as_array().unwrap().len(), 2);
    assert_eq!(v["plan"]["zones"][0]["changes"].as_array().unwrap().len(), 3);
    assert_eq!(v["repair"][0]["result"]["result"], "applied");
    assert_eq!(v["after"]["findings"], Value::Array(vec![]));
    for s in v["after"]["zones"][0]["servers"].as_array().unwrap() {
        assert_eq!(s["records"].as_array().unwrap().len(), 1);
        assert_eq!(s["records"][0]["target"], "kms1.demo.test");
    }
    let text = stdout(&kmsdns(&["demo"]));
    for step in ["== 1. kmsdns audit", "== 2. kmsdns plan", "== 3. kmsdns repair --apply", "== 4. kmsdns audit, again"]
    {
        assert!(text.contains(step), "{text}");
    }
    assert!(text.contains("every server serves the new RRset") && text.contains("ok: no findings"), "{text}");
}
