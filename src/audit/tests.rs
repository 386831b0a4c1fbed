//! One scenario per finding code, plus the rules that keep the audit honest.

use std::net::{IpAddr, SocketAddr};

use super::*;
use crate::inventory::ServerAddr;
use crate::model::{ReadError, SrvAnswer};
use crate::testkit::{Row, World, failed, name, records};

fn zone_wide(code: &'static str, target: &str) -> Row {
    (code, None, Some(target.to_string()))
}

#[test]
fn a_converged_zone_has_no_findings() {
    let w = World::new(&["kms1.corp.test", "kms2.corp.test"]);
    assert_eq!(w.summary(), vec![]);
}

#[test]
fn standby_hosts_may_be_published_or_not() {
    assert_eq!(World::new(&["kms1.corp.test", "kms2.corp.test", "spare.corp.test"]).summary(), vec![]);
}

#[test]
fn each_finding_code_has_its_scenario() {
    let down = || Some(ProbeState::Down("connect: Connection refused".into()));
    let cases: Vec<(&str, World, Vec<Row>)> = vec![
        (
            "a decommissioned host is still published (even though it answers)",
            World::new(&["kms1.corp.test", "kms2.corp.test", "old.corp.test"]),
            vec![zone_wide("stale-decommissioned", "old.corp.test")],
        ),
        (
            "someone installed a KMS host key on an ordinary machine",
            World::new(&["kms1.corp.test", "kms2.corp.test", "rogue.corp.test"]).host(
                "rogue.corp.test",
                9,
                Some(ProbeState::KmsUp),
            ),
            vec![zone_wide("stale-unknown-host", "rogue.corp.test")],
        ),
        (
            "a target whose address record is gone",
            World::new(&["kms1.corp.test", "kms2.corp.test", "ghost.corp.test"])
                .resolution("ghost.corp.test", Resolution::NoAddress),
            vec![zone_wide("stale-unresolvable", "ghost.corp.test")],
        ),
        (
            "a KMS host died and its record stayed",
            World::new(&["kms1.corp.test", "kms2.corp.test"]).host("kms2.corp.test", 2, down()),
            vec![zone_wide("stale-dead", "kms2.corp.test")],
        ),
        (
            "the port answers, but not as KMS",
            World::new(&["kms1.corp.test", "kms2.corp.test"]).host(
                "kms2.corp.test",
                2,
                Some(ProbeState::NotKms("bind_nak".into())),
            ),
            vec![zone_wide("not-kms", "kms2.corp.test")],
        ),
        (
            "an active host that answers is not published",
            World::new(&["kms1.corp.test"]),
            vec![zone_wide("missing-record", "kms2.corp.test")],
        ),
        (
            "every target is dead",
            World::new(&["kms1.corp.test"]).host("kms1.corp.test", 1, down()).host("kms2.corp.test", 2, down()),
            vec![
                ("no-healthy-host", None, None),
                zone_wide("stale-dead", "kms1.corp.test"),
                zone_wide("active-host-down", "kms2.corp.test"),
            ],
        ),
        (
            "nothing is published at all and no host answers",
            World::new(&[]).host("kms1.corp.test", 1, down()).host("kms2.corp.test", 2, down()),
            vec![
                ("no-healthy-host", None, None),
                zone_wide("active-host-down", "kms1.corp.test"),
                zone_wide("active-host-down", "kms2.corp.test"),
            ],
        ),
    ];
    for (what, world, want) in cases {
        assert_eq!(world.summary(), want, "{what}");
    }
}

#[test]
fn drift_is_reported_when_the_host_answers_on_its_inventory_port() {
    let mut w = World::new(&["kms1.corp.test", "kms2.corp.test"]);
    for s in &mut w.obs.zones[0].servers {
        if let SrvAnswer::Records { records } = &mut s.srv {
            records[0].priority = 5;
        }
    }
    let f = w.findings();
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].code, Code::RecordDrift);
    assert_eq!(f[0].severity, Severity::Warning);
    assert!(f[0].message.contains("SRV 5 0 1688 kms1.corp.test."), "{}", f[0].message);
    assert!(f[0].message.contains("wants SRV 0 0 1688 kms1.corp.test."), "{}", f[0].message);
}

#[test]
fn divergent_servers_are_reported_and_judged_one_by_one() {
    let w = World::new(&["kms1.corp.test", "kms2.corp.test"]).server(1, records(&["kms1.corp.test", "old.corp.test"]));
    assert_eq!(
        w.summary(),
        vec![
            ("stale-decommissioned", Some("127.0.0.1:5301".into()), Some("old.corp.test".into())),
            ("missing-record", Some("127.0.0.1:5301".into()), Some("kms2.corp.test".into())),
            ("server-divergence", None, None),
        ]
    );
    let div = w.findings().into_iter().find(|f| f.code == Code::ServerDivergence).unwrap();
    assert!(div.message.contains("127.0.0.1:5301 has [kms1.corp.test, old.corp.test]"), "{}", div.message);
}

#[test]
fn differing_serials_alone_are_divergence() {
    let mut w = World::new(&["kms1.corp.test", "kms2.corp.test"]);
    w.obs.zones[0].servers[1].serial = Ok(8);
    let f = w.findings();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].code, Code::ServerDivergence);
    assert!(f[0].message.contains("serial 7") && f[0].message.contains("serial 8"));
}

#[test]
fn an_unreadable_server_is_unknown_not_empty() {
    // The second server timed out: its records are unknown, so nothing is said about them.
    // The first server was read and lacks kms2, so kms2 is missing (over the servers read).
    let w = World::new(&["kms1.corp.test"]).server(1, failed(ReadError::Timeout));
    assert_eq!(
        w.summary(),
        vec![
            ("server-unreachable", Some("127.0.0.1:5301".into()), None),
            ("missing-record", None, Some("kms2.corp.test".into())),
        ]
    );
    let unreachable = &w.findings()[0];
    assert_eq!(unreachable.severity, Severity::Critical);
    assert!(unreachable.message.contains("no answer within the timeout"), "{}", unreachable.message);
    // A record seen only on the readable server gets a zone-wide verdict (over the servers read).
    let w = World::new(&["kms1.corp.test", "kms2.corp.test", "old.corp.test"]).server(0, failed(ReadError::Refused));
    assert_eq!(
        w.summary(),
        vec![
            ("server-unreachable", Some("127.0.0.1:5300".into()), None),
            zone_wide("stale-decommissioned", "old.corp.test")
        ]
    );
}

#[test]
fn when_no_server_can_be_read_nothing_is_called_stale_missing_or_unhealthy() {
    let w = World::new(&["kms1.corp.test"])
        .server(0, failed(ReadError::ServFail))
        .server(1, failed(ReadError::NotAuthoritative))
        .host("kms1.corp.test", 1, Some(ProbeState::Down("refused".into())));
    let codes: Vec<_> = w.summary().into_iter().map(|s| s.0).collect();
    assert_eq!(codes, vec!["server-unreachable", "server-unreachable"]);
}

#[test]
fn a_failed_address_lookup_gives_no_liveness_verdict() {
    let w = World::new(&["kms1.corp.test", "kms2.corp.test", "far.example.net"])
        .resolution("far.example.net", Resolution::Failed { error: ReadError::Timeout });
    // Unknown to the inventory, so still reported as such, but not as dead or unresolvable.
    assert_eq!(w.summary(), vec![zone_wide("stale-unknown-host", "far.example.net")]);
    // And with every other target down, the zone is not declared without a healthy host.
    let w = w.host("kms1.corp.test", 1, Some(ProbeState::Down("x".into()))).host(
        "kms2.corp.test",
        2,
        Some(ProbeState::Down("x".into())),
    );
    assert!(!w.findings().iter().any(|f| f.code == Code::NoHealthyHost));
}

#[test]
fn an_unprobed_address_is_unknown() {
    let w = World::new(&["kms1.corp.test", "kms2.corp.test"]).host("kms2.corp.test", 2, None);
    assert_eq!(w.summary(), vec![]);
}

#[test]
fn one_live_address_makes_a_host_up() {
    let mut w = World::new(&["kms1.corp.test", "kms2.corp.test"]);
    let (a, b) = (IpAddr::from([127, 0, 0, 2]), IpAddr::from([127, 0, 0, 50]));
    w.obs.names.insert(name("kms2.corp.test"), Resolution::Addresses { addresses: vec![a, b], incomplete: None });
    w.obs.probes.insert(SocketAddr::new(b, 1688), ProbeState::Down("refused".into()));
    assert_eq!(health(&w.obs, &name("kms2.corp.test"), 1688), Health::Up);
    assert_eq!(w.summary(), vec![]);
}

#[test]
fn names_compare_without_case_or_trailing_dot() {
    let w = World::new(&["KMS1.Corp.Test.", "kms2.CORP.test"]);
    assert_eq!(w.summary(), vec![]);
}

#[test]
fn findings_carry_a_message_and_a_fix() {
    let w = World::new(&["kms1.corp.test", "kms2.corp.test"]).host(
        "kms2.corp.test",
        2,
        Some(ProbeState::Down("connect: refused".into())),
    );
    let f = &w.findings()[0];
    assert!(f.message.contains("0x800706BA"), "{}", f.message);
    assert!(f.fix.contains("delete `_vlmcs._tcp.corp.test. IN SRV 0 0 1688 kms2.corp.test.`"), "{}", f.fix);
    let _ = ServerAddr::parse("127.0.0.1").unwrap();
}

#[test]
fn a_zone_nobody_publishes_in_and_without_records_is_quiet() {
    let mut w = World::new(&[]);
    w.inv.hosts.retain(|h| h.state != HostState::Active);
    assert_eq!(w.summary(), vec![]);
}

#[test]
fn an_active_host_that_is_down_and_unpublished_is_a_finding() {
    // Its stale record was removed; the zone still works through kms1, but the estate has lost
    // a KMS host, and a monitoring check must not stay green.
    let down = Some(ProbeState::Down("connect: Connection refused".into()));
    let w = World::new(&["kms1.corp.test"]).host("kms2.corp.test", 2, down);
    assert_eq!(w.summary(), vec![zone_wide("active-host-down", "kms2.corp.test")]);
    let f = &w.findings()[0];
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.message.contains("kms2.corp.test") && f.message.contains("Connection refused"), "{}", f.message);

    // Unknown is no verdict: a host whose probe was not made gets no finding.
    let w = World::new(&["kms1.corp.test"]).host("kms2.corp.test", 2, None);
    assert_eq!(w.summary(), vec![]);
}
