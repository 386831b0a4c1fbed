use super::*;
use crate::audit::Code;
use crate::model::ReadError;
use crate::name::DnsName;

fn finding(code: Code) -> Finding {
    Finding {
        code,
        severity: code.severity(),
        zone: DnsName::parse("corp.test").unwrap(),
        server: None,
        record: None,
        target: None,
        message: "m".into(),
        fix: "f".into(),
    }
}

#[test]
fn exit_codes_follow_the_plugin_convention() {
    assert_eq!(exit_code(&[]), 0);
    assert_eq!(exit_code(&[finding(Code::RecordDrift)]), 1);
    assert_eq!(exit_code(&[finding(Code::RecordDrift), finding(Code::StaleDead)]), 2);
}

#[test]
fn written_json_is_the_same_text_as_to_json() {
    let w = crate::testkit::World::new(&["kms1.corp.test"]);
    let report = AuditReport::new(&w.inv, &w.obs, w.findings(), "2026-12-02T00:00:00Z".into());
    let mut written = Vec::new();
    report.write_json(&mut written).unwrap();
    assert_eq!(String::from_utf8(written).unwrap(), report.to_json() + "\n");
}

/// The audit's own pretty printer writes what serde_json's does: empty and nested arrays and
/// objects, strings that need escaping, and more levels than its line of spaces holds.
#[test]
fn the_audit_pretty_printer_writes_what_serde_json_writes() {
    let mut deep = serde_json::json!({"leaf": [1, "two", null, {}, []]});
    for i in 0..40 {
        deep = serde_json::json!({ "level": i, "empty": [], "none": {}, "quote\"\n": "a\tb", "next": [deep, [[]]] });
    }
    let mut ours = Vec::new();
    super::audit::write_pretty(&mut ours, &deep).unwrap();
    assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string_pretty(&deep).unwrap());
}

fn held_outcome(answers: [crate::model::SrvAnswer; 2]) -> crate::cycle::ZoneOutcome {
    let [a, b] = answers;
    let w = crate::testkit::World::new(&["kms1.corp.test"]).server(0, a).server(1, b);
    let plan = crate::plan::plan(&w.inv, &w.obs, &w.findings()).zones.remove(0);
    let result = crate::cycle::ZoneResult::NothingToDo;
    crate::cycle::ZoneOutcome { zone: plan.zone.clone(), plan, result, servers: vec![] }
}

#[test]
fn a_zone_held_for_an_unreadable_server_shows_what_each_server_holds() {
    use crate::testkit::{failed, records};
    let o = held_outcome([records(&["kms1.corp.test"]), failed(ReadError::Timeout)]);
    let text = repair_text(std::slice::from_ref(&o), 100);
    assert!(text.contains("  now on 127.0.0.1:5300: SRV 0 0 1688 kms1.corp.test.\n"), "{text}");
    assert!(text.contains("  now on 127.0.0.1:5301: unreadable: no answer within the timeout"), "{text}");
    assert!(!text.contains("no SRV records"), "{text}");
    assert_eq!(repair_exit_code(&[o]), 1);

    // An empty answer is known, and said; only the unreadable server is unknown.
    let o = held_outcome([records(&[]), failed(ReadError::Refused)]);
    let text = repair_text(std::slice::from_ref(&o), 100);
    assert!(text.contains("  now on 127.0.0.1:5300: no SRV records\n"), "{text}");
    assert!(text.contains("  now on 127.0.0.1:5301: unreadable: the server refused"), "{text}");

    let o = held_outcome([failed(ReadError::Timeout), failed(ReadError::ServFail)]);
    let text = repair_text(std::slice::from_ref(&o), 100);
    assert!(!text.contains("no SRV records"), "{text}");
    assert_eq!(repair_exit_code(&[o]), 2, "{text}");
}

#[test]
fn the_failover_ends_with_the_count_the_pinned_clients_and_the_ttl() {
    use crate::failover::Runbook;
    let mut rb = Runbook {
        from: DnsName::parse("kms1.corp.test").unwrap(),
        to: DnsName::parse("kms2.corp.test").unwrap(),
        applied: true,
        steps: vec![],
        left: vec![],
        cache_ttl: Some(3600),
        to_port: 1688,
        ok: true,
    };
    let text = runbook_text(&rb, 100);
    let tail = &text[text.find("what clients see after the failover:").expect(&text)..];
    for want in [
        "kms2.corp.test activates client editions of Windows only once its count reaches 25, server editions once it reaches 5",
        "0xC004F038",
        "clients pointed at kms1.corp.test with `slmgr /skms` do not use DNS",
        "change each by hand",
        "for up to 1h (their TTL, 3600 s)",
    ] {
        assert!(
            tail.replace('\n', " ").split_whitespace().collect::<Vec<_>>().join(" ").contains(want),
            "{want:?} in:\n{tail}"
        );
    }
    assert!(text.trim_end().ends_with("done: every server serves the new records"), "{text}");
    rb.cache_ttl = None;
    assert!(!runbook_text(&rb, 100).contains("for up to"));
}

#[test]
fn wrapping_keeps_lines_within_the_width() {
    let mut out = String::new();
    let body = "word ".repeat(60);
    push_wrapped(&mut out, "  CRITICAL stale-dead: ", &body, 100);
    assert!(out.lines().count() > 2);
    assert!(out.lines().all(|l| l.chars().count() <= 100), "{out}");
}
