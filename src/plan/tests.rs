//! The planner: what each finding asks for, and each safety rail.

use super::*;
use crate::model::{ProbeState, ReadError, Resolution, SrvAnswer};
use crate::testkit::{World, failed, name, records, srv};

const REPAIR: &str = "policy = \"repair\"\nallow_unsigned = true";

fn plan_of(w: &World) -> ZonePlan {
    let findings = w.findings();
    plan(&w.inv, &w.obs, &findings).zones.remove(0)
}

/// (action, target) of each change, for compact assertions.
fn changes(p: &ZonePlan) -> Vec<(Action, String)> {
    p.changes.iter().map(|c| (c.action, c.record.target.to_string())).collect()
}

fn down() -> Option<ProbeState> {
    Some(ProbeState::Down("connect: Connection refused".into()))
}

#[test]
fn a_converged_zone_needs_no_change() {
    let p = plan_of(&World::with_zone_settings(REPAIR, &["kms1.corp.test", "kms2.corp.test"]));
    assert!(p.changes.is_empty() && p.held.is_empty(), "{p:#?}");
    assert!(!p.will_apply());
}

#[test]
fn stale_records_are_deleted_and_missing_ones_added_in_one_plan() {
    let w = World::with_zone_settings(REPAIR, &["kms1.corp.test", "old.corp.test", "ghost.corp.test"])
        .resolution("ghost.corp.test", Resolution::NoAddress);
    let p = plan_of(&w);
    assert_eq!(
        changes(&p),
        vec![
            (Action::Delete, "ghost.corp.test".into()),
            (Action::Delete, "old.corp.test".into()),
            (Action::Add, "kms2.corp.test".into()),
        ]
    );
    assert_eq!(p.changes[0].code, Code::StaleUnresolvable);
    assert_eq!(p.changes[2].code, Code::MissingRecord);
    assert_eq!(p.before.len(), 3);
    let after: Vec<String> = p.after().iter().map(|r| r.target.to_string()).collect();
    assert_eq!(after, vec!["kms1.corp.test", "kms2.corp.test"]);
    assert!(p.will_apply());
}

#[test]
fn dead_and_not_kms_targets_are_deleted() {
    let w = World::with_zone_settings(REPAIR, &["kms1.corp.test", "kms2.corp.test", "spare.corp.test"])
        .host("kms2.corp.test", 2, down())
        .host("spare.corp.test", 3, Some(ProbeState::NotKms("bind_nak".into())));
    assert_eq!(
        changes(&plan_of(&w)),
        vec![(Action::Delete, "kms2.corp.test".into()), (Action::Delete, "spare.corp.test".into())]
    );
}

#[test]
fn unknown_hosts_are_deleted_only_with_remove_unknown() {
    let targets = ["kms1.corp.test", "kms2.corp.test", "rogue.corp.test"];
    let w = World::with_zone_settings(REPAIR, &targets).host("rogue.corp.test", 9, Some(ProbeState::KmsUp));
    let p = plan_of(&w);
    assert!(p.changes.is_empty());
    assert_eq!(p.held.len(), 1);
    assert!(p.held[0].reason.contains("remove_unknown = false"), "{:?}", p.held);

    let w = World::with_zone_settings(&format!("{REPAIR}\nremove_unknown = true"), &targets).host(
        "rogue.corp.test",
        9,
        Some(ProbeState::KmsUp),
    );
    assert_eq!(changes(&plan_of(&w)), vec![(Action::Delete, "rogue.corp.test".into())]);
}

#[test]
fn drift_is_replaced_in_the_same_update_and_is_not_a_removal() {
    let mut w = World::with_zone_settings(&format!("{REPAIR}\nmax_deletes = 0"), &["kms1.corp.test", "kms2.corp.test"]);
    for s in &mut w.obs.zones[0].servers {
        s.srv = SrvAnswer::Records {
            records: vec![SrvRecord { priority: 5, ..srv("kms1.corp.test") }, srv("kms2.corp.test")],
        };
    }
    let p = plan_of(&w);
    assert_eq!(p.changes.len(), 2, "{p:#?}");
    assert_eq!((p.changes[0].action, p.changes[0].record.priority), (Action::Delete, 5));
    assert_eq!((p.changes[1].action, p.changes[1].record.priority), (Action::Add, 0));
    assert_eq!(p.changes[1].code, Code::RecordDrift);
    assert!(p.held.is_empty());
}

#[test]
fn at_most_max_deletes_records_leave_a_zone_per_run_most_urgent_first() {
    let w = World::with_zone_settings(
        &format!("{REPAIR}\nmax_deletes = 1"),
        &["kms1.corp.test", "kms2.corp.test", "old.corp.test"],
    )
    .host("kms2.corp.test", 2, down());
    let p = plan_of(&w);
    // The dead host goes first (clients fail on it now); the decommissioned one still answers.
    assert_eq!(changes(&p), vec![(Action::Delete, "kms2.corp.test".into())]);
    assert_eq!(p.held.len(), 1);
    assert_eq!(p.held[0].record.as_ref().unwrap().target.to_string(), "old.corp.test");
    assert!(p.held[0].reason.contains("max_deletes = 1"));
}

#[test]
fn nothing_is_planned_when_a_server_could_not_be_read() {
    let w =
        World::with_zone_settings(REPAIR, &["kms1.corp.test", "old.corp.test"]).server(1, failed(ReadError::Timeout));
    let p = plan_of(&w);
    assert!(p.changes.is_empty());
    assert!(p.held[0].reason.contains("127.0.0.1:5301 could not be read"), "{:?}", p.held);
}

#[test]
fn nothing_is_planned_when_the_servers_disagree() {
    let w = World::with_zone_settings(REPAIR, &["kms1.corp.test", "kms2.corp.test", "old.corp.test"])
        .server(1, records(&["kms1.corp.test", "kms2.corp.test"]));
    let p = plan_of(&w);
    assert!(p.changes.is_empty());
    assert!(p.held[0].reason.contains("disagree"), "{:?}", p.held);
}

#[test]
fn the_last_working_kms_host_is_never_removed() {
    // kms1 is dead; the only target that still answers is the decommissioned one.
    let w = World::with_zone_settings(REPAIR, &["kms1.corp.test", "old.corp.test"])
        .host("kms1.corp.test", 1, down())
        .host("kms2.corp.test", 2, down());
    let p = plan_of(&w);
    assert_eq!(changes(&p), vec![(Action::Delete, "kms1.corp.test".into())]);
    assert_eq!(p.held.len(), 1);
    assert!(p.held[0].reason.contains("last target that answers as a KMS host"), "{:?}", p.held);
    // Once a working host is added in the same plan, the decommissioned one may go.
    let w = World::with_zone_settings(REPAIR, &["kms1.corp.test", "old.corp.test"]).host("kms1.corp.test", 1, down());
    let p = plan_of(&w);
    assert_eq!(
        changes(&p),
        vec![
            (Action::Delete, "kms1.corp.test".into()),
            (Action::Delete, "old.corp.test".into()),
            (Action::Add, "kms2.corp.test".into())
        ]
    );
}

#[test]
fn an_audit_zone_gets_its_plan_shown_never_applied() {
    let w = World::new(&["kms1.corp.test", "kms2.corp.test", "old.corp.test"]);
    let p = plan_of(&w);
    assert_eq!(changes(&p), vec![(Action::Delete, "old.corp.test".into())]);
    assert!(!p.will_apply());
    assert!(p.held.iter().any(|h| h.reason.contains("policy is \"audit\"")), "{:?}", p.held);
}

#[test]
fn plans_round_trip_through_json() {
    let w = World::with_zone_settings(REPAIR, &["kms1.corp.test", "old.corp.test"]);
    let findings = w.findings();
    let p = plan(&w.inv, &w.obs, &findings);
    let text = serde_json::to_string(&p).unwrap();
    assert_eq!(serde_json::from_str::<Plan>(&text).unwrap(), p);
}

#[test]
fn differing_serials_alone_do_not_hold_a_repair() {
    let mut w = World::with_zone_settings(REPAIR, &["kms1.corp.test", "kms2.corp.test", "old.corp.test"]);
    w.obs.zones[0].servers[1].serial = Ok(8);
    let p = plan_of(&w);
    assert_eq!(changes(&p), vec![(Action::Delete, "old.corp.test".into())]);
}

#[test]
fn when_nothing_answers_no_dead_target_is_deleted() {
    // Every host down at once: more likely a firewall on this side than a dead estate.
    let w = World::with_zone_settings(REPAIR, &["kms1.corp.test", "kms2.corp.test", "old.corp.test"])
        .host("kms1.corp.test", 1, down())
        .host("kms2.corp.test", 2, down())
        .host("old.corp.test", 4, down());
    let p = plan_of(&w);
    // The decommissioned record may still go: that is the inventory's word, not a probe's.
    assert_eq!(changes(&p), vec![(Action::Delete, "old.corp.test".into())]);
    assert!(p.held.iter().filter(|h| h.reason.contains("no target of the zone answers")).count() == 2, "{:?}", p.held);
}

#[test]
fn when_nothing_answers_no_unresolvable_target_is_deleted_either() {
    // One host down, the other's name gone: a broken view on this side (a resolver, a
    // firewall) looks exactly like this, so neither record is removed on it.
    let w = World::with_zone_settings(REPAIR, &["kms1.corp.test", "kms2.corp.test"])
        .host("kms1.corp.test", 1, down())
        .resolution("kms2.corp.test", Resolution::NoAddress);
    let p = plan_of(&w);
    assert_eq!(changes(&p), vec![], "{p:#?}");
    assert_eq!(p.held.iter().filter(|h| h.reason.contains("no target of the zone answers")).count(), 2, "{:?}", p.held);
}

// The plan is checked again when it is applied: a plan file is never trusted as written.

/// The plan of `w` re-checked against `now`, for the zone corp.test.
fn recheck_of(planned: &ZonePlan, now: &World) -> ZonePlan {
    let findings = now.findings();
    let mut zones = recheck(&now.inv, &now.obs, &findings, std::slice::from_ref(planned)).zones;
    assert_eq!(zones.len(), 1, "{zones:#?}");
    zones.remove(0)
}

/// The delete a finding of `w` asks for `target`, as a hand-edited plan would carry it.
fn delete_of(w: &World, target: &str) -> Change {
    let f = w.findings().into_iter().find(|f| f.target.as_ref().is_some_and(|t| t.as_str() == target)).unwrap();
    Change { action: Action::Delete, record: f.record.unwrap(), code: f.code, reason: f.message }
}

fn held_for<'a>(p: &'a ZonePlan, target: &str) -> Vec<&'a str> {
    p.held
        .iter()
        .filter(|h| h.record.as_ref().is_some_and(|r| r.target.as_str() == target))
        .map(|h| h.reason.as_str())
        .collect()
}

/// kms1 up; kms2 dead, spare not KMS, old decommissioned, two names gone: five deletes asked.
fn five_stale(settings: &str) -> World {
    let targets =
        ["kms1.corp.test", "kms2.corp.test", "spare.corp.test", "old.corp.test", "g1.corp.test", "g2.corp.test"];
    World::with_zone_settings(&format!("{REPAIR}\n{settings}"), &targets)
        .host("kms2.corp.test", 2, down())
        .host("spare.corp.test", 3, Some(ProbeState::NotKms("bind_nak".into())))
        .resolution("g1.corp.test", Resolution::NoAddress)
        .resolution("g2.corp.test", Resolution::NoAddress)
}

#[test]
fn the_planners_own_plan_passes_the_recheck_unchanged() {
    let worlds =
        [
            World::with_zone_settings(REPAIR, &["kms1.corp.test", "old.corp.test", "ghost.corp.test"])
                .resolution("ghost.corp.test", Resolution::NoAddress),
            five_stale("max_deletes = 2"),
            World::with_zone_settings(REPAIR, &["kms1.corp.test", "old.corp.test"])
                .host("kms1.corp.test", 1, down())
                .host("kms2.corp.test", 2, down()),
        ];
    for w in &worlds {
        let p = plan_of(w);
        assert!(!p.changes.is_empty(), "{p:#?}");
        let again = recheck_of(&p, w);
        assert_eq!(again.changes, p.changes, "{again:#?}");
        assert_eq!(again.before, p.before);
        assert!(again.will_apply());
    }
}

#[test]
fn five_deletes_under_max_deletes_2_are_cut_to_2_at_apply_time() {
    // The plan was made (or edited) with max_deletes = 10; the inventory says 2.
    let planned = plan_of(&five_stale("max_deletes = 10"));
    assert_eq!(planned.deletes().count(), 5, "{planned:#?}");
    let now = five_stale("max_deletes = 2");
    let p = recheck_of(&planned, &now);
    assert_eq!(p.deletes().count(), 2, "{p:#?}");
    let capped: Vec<&Held> = p.held.iter().filter(|h| h.reason.contains("max_deletes = 2")).collect();
    assert_eq!(capped.len(), 3, "{:#?}", p.held);
    assert!(capped.iter().all(|h| h.record.is_some()), "each held record is named: {capped:#?}");
}

#[test]
fn a_plan_that_deletes_the_last_live_target_sends_nothing_for_it() {
    // kms1 is dead; old (decommissioned) is the only target that answers as KMS.
    let w = World::with_zone_settings(REPAIR, &["kms1.corp.test", "old.corp.test"])
        .host("kms1.corp.test", 1, down())
        .host("kms2.corp.test", 2, down());
    let mut planned = plan_of(&w);
    planned.changes.push(delete_of(&w, "old.corp.test"));
    planned.held.clear();
    let p = recheck_of(&planned, &w);
    assert_eq!(changes(&p), vec![(Action::Delete, "kms1.corp.test".into())]);
    assert!(held_for(&p, "old.corp.test").iter().any(|r| r.contains("last target that answers")), "{:#?}", p.held);

    planned.changes.retain(|c| c.record.target.as_str() == "old.corp.test");
    let p = recheck_of(&planned, &w);
    assert_eq!(changes(&p), vec![]);
    assert!(!p.will_apply());
}

#[test]
fn a_change_no_finding_of_now_asks_for_is_held() {
    let w = World::with_zone_settings(REPAIR, &["kms1.corp.test", "kms2.corp.test", "old.corp.test"]);
    let mut planned = plan_of(&w);
    // Hand-added: delete the healthy kms1, and add a record nobody wants.
    let kms1 = srv("kms1.corp.test");
    let reason = "edited".to_string();
    planned.changes.push(Change {
        action: Action::Delete,
        record: kms1,
        code: Code::StaleDead,
        reason: reason.clone(),
    });
    let stray = srv("desk42.corp.test");
    planned.changes.push(Change { action: Action::Add, record: stray, code: Code::MissingRecord, reason });
    let p = recheck_of(&planned, &w);
    assert_eq!(changes(&p), vec![(Action::Delete, "old.corp.test".into())]);
    for t in ["kms1.corp.test", "desk42.corp.test"] {
        assert!(held_for(&p, t).iter().any(|r| r.contains("no finding of now asks for it")), "{t}: {:#?}", p.held);
    }
}

#[test]
fn a_delete_of_an_unknown_host_is_held_without_remove_unknown() {
    let targets = ["kms1.corp.test", "kms2.corp.test", "rogue.corp.test"];
    let w = World::with_zone_settings(REPAIR, &targets).host("rogue.corp.test", 9, Some(ProbeState::KmsUp));
    let mut planned = plan_of(&w);
    planned.changes.push(delete_of(&w, "rogue.corp.test"));
    let p = recheck_of(&planned, &w);
    assert_eq!(changes(&p), vec![]);
    assert!(held_for(&p, "rogue.corp.test").iter().any(|r| r.contains("remove_unknown = false")), "{:#?}", p.held);
}

#[test]
fn a_plan_made_on_another_rrset_is_held_whole() {
    let w = World::with_zone_settings(REPAIR, &["kms1.corp.test", "kms2.corp.test", "old.corp.test"]);
    let mut planned = plan_of(&w);
    planned.before.retain(|r| r.target.as_str() != "kms2.corp.test");
    let p = recheck_of(&planned, &w);
    assert_eq!(changes(&p), vec![]);
    assert!(held_for(&p, "old.corp.test").iter().any(|r| r.contains("not the one the plan was made from")), "{p:#?}");
}

#[test]
fn a_plan_is_held_whole_when_a_server_cannot_be_read_now() {
    let w = World::with_zone_settings(REPAIR, &["kms1.corp.test", "kms2.corp.test", "old.corp.test"]);
    let planned = plan_of(&w);
    let now = World::with_zone_settings(REPAIR, &["kms1.corp.test", "kms2.corp.test", "old.corp.test"])
        .server(1, failed(ReadError::Timeout));
    let p = recheck_of(&planned, &now);
    assert_eq!(changes(&p), vec![]);
    assert!(held_for(&p, "old.corp.test").iter().any(|r| r.contains("127.0.0.1:5301 could not be read")), "{p:#?}");
    assert_eq!(p.servers.len(), 2, "{p:#?}");
}

#[test]
fn a_plan_is_held_whole_when_the_servers_disagree_now() {
    let w = World::with_zone_settings(REPAIR, &["kms1.corp.test", "kms2.corp.test", "old.corp.test"]);
    let planned = plan_of(&w);
    let now = World::with_zone_settings(REPAIR, &["kms1.corp.test", "kms2.corp.test", "old.corp.test"])
        .server(1, records(&["kms1.corp.test", "kms2.corp.test"]));
    let p = recheck_of(&planned, &now);
    assert_eq!(changes(&p), vec![]);
    assert!(held_for(&p, "old.corp.test").iter().any(|r| r.contains("disagree")), "{p:#?}");
}

#[test]
fn the_blind_probe_rail_is_rechecked_on_the_probes_of_now() {
    let planned = plan_of(&World::with_zone_settings(REPAIR, &["kms1.corp.test", "kms2.corp.test"]).host(
        "kms2.corp.test",
        2,
        down(),
    ));
    assert_eq!(changes(&planned), vec![(Action::Delete, "kms2.corp.test".into())]);
    // Now nothing answers at all: more likely this side's network than the whole estate.
    let now = World::with_zone_settings(REPAIR, &["kms1.corp.test", "kms2.corp.test"])
        .host("kms1.corp.test", 1, down())
        .host("kms2.corp.test", 2, down());
    let p = recheck_of(&planned, &now);
    assert_eq!(changes(&p), vec![]);
    assert!(held_for(&p, "kms2.corp.test").iter().any(|r| r.contains("no target of the zone answers")), "{p:#?}");
}

#[test]
fn the_inventorys_policy_of_now_decides_not_the_plans() {
    let planned = plan_of(&World::with_zone_settings(REPAIR, &["kms1.corp.test", "kms2.corp.test", "old.corp.test"]));
    assert!(planned.will_apply());
    let now = World::new(&["kms1.corp.test", "kms2.corp.test", "old.corp.test"]);
    let p = recheck_of(&planned, &now);
    assert!(!p.will_apply(), "{p:#?}");
    assert!(p.held.iter().any(|h| h.reason.contains("policy is \"audit\"")), "{:#?}", p.held);
}

#[test]
fn a_zone_the_plan_names_twice_or_the_inventory_lacks_gets_nothing() {
    let w = World::with_zone_settings(REPAIR, &["kms1.corp.test", "kms2.corp.test", "old.corp.test"]);
    let planned = plan_of(&w);
    let findings = w.findings();
    let zones = recheck(&w.inv, &w.obs, &findings, &[planned.clone(), planned.clone()]).zones;
    assert_eq!(zones.len(), 2);
    assert_eq!(changes(&zones[0]), vec![(Action::Delete, "old.corp.test".into())]);
    assert_eq!(changes(&zones[1]), vec![], "{:#?}", zones[1]);
    assert!(zones[1].held.iter().any(|h| h.reason.contains("more than once")), "{:#?}", zones[1].held);

    let mut elsewhere = planned;
    elsewhere.zone = name("other.test");
    let zones = recheck(&w.inv, &w.obs, &findings, &[elsewhere]).zones;
    assert_eq!(changes(&zones[0]), vec![]);
    assert!(zones[0].held.iter().any(|h| h.reason.contains("not in the inventory")), "{:#?}", zones[0].held);
}

#[test]
fn a_held_zone_says_what_each_server_holds_and_which_is_unknown() {
    let w =
        World::with_zone_settings(REPAIR, &["kms1.corp.test", "old.corp.test"]).server(1, failed(ReadError::Timeout));
    let p = plan_of(&w);
    assert_eq!(
        p.servers,
        vec![
            ServerHolding {
                server: "127.0.0.1:5300".into(),
                holds: Holding::Records { records: vec![srv("kms1.corp.test"), srv("old.corp.test")] }
            },
            ServerHolding {
                server: "127.0.0.1:5301".into(),
                holds: Holding::Unknown { why: ReadError::Timeout.to_string() }
            },
        ]
    );
    // A zone that could be read holds no such list: `before` says it all.
    assert!(plan_of(&World::with_zone_settings(REPAIR, &["kms1.corp.test"])).servers.is_empty());
}

/// `n` zones on two servers, 3 active hosts publishing in every zone; each zone serves kms1,
/// kms2 and a dead host, so that every zone has findings (a missing kms3, a stale-dead record)
/// and a plan.
fn estate(n: usize) -> (Inventory, Observation) {
    let mut text = String::from("[defaults]\nretries = 1\n");
    for i in 0..n {
        text += &format!(
            "[[zone]]\nname = \"zone{i}.test\"\nservers = [\"127.0.0.1:5300\", \"127.0.0.1:5301\"]\npolicy = \"repair\"\nallow_unsigned = true\n"
        );
    }
    let zones: Vec<String> = (0..n).map(|i| format!("\"zone{i}.test\"")).collect();
    for k in 1..=3 {
        text += &format!("[[host]]\nname = \"kms{k}.test\"\nzones = [{}]\nstate = \"active\"\n", zones.join(", "));
    }
    let inv = Inventory::from_toml(&text).unwrap_or_else(|p| panic!("{p:?}"));
    let answer = records(&["kms1.test", "kms2.test", "dead.test"]);
    let zones = inv
        .zones
        .iter()
        .map(|z| crate::model::ZoneView {
            zone: z.name.clone(),
            servers: z
                .servers
                .iter()
                .map(|s| crate::model::ServerView {
                    server: s.clone(),
                    srv: answer.clone(),
                    serial: Ok(7),
                    mname: None,
                })
                .collect(),
        })
        .collect();
    let peers = inv.zones.iter().map(|z| (z.name.clone(), crate::peers::PeerViews::Read { entries: vec![] })).collect();
    let mut obs = Observation { zones, peers, ..Default::default() };
    for (i, (host, state)) in [
        ("kms1", ProbeState::KmsUp),
        ("kms2", ProbeState::KmsUp),
        ("kms3", ProbeState::KmsUp),
        ("dead", down().unwrap()),
    ]
    .into_iter()
    .enumerate()
    {
        let ip = std::net::IpAddr::from([127, 0, 0, i as u8 + 1]);
        obs.names
            .insert(name(&format!("{host}.test")), Resolution::Addresses { addresses: vec![ip], incomplete: None });
        obs.probes.insert(std::net::SocketAddr::new(ip, 1688), state);
    }
    (inv, obs)
}

#[test]
fn audit_and_plan_are_linear_in_the_zones() {
    // Counted name comparisons, not time: a scan of every zone (or host list, or finding) per
    // zone would make four times the zones sixteen times the work. Sorting the findings adds a
    // log factor, hence 6 and not 4.
    let work = |n: usize| {
        let (inv, obs) = estate(n);
        let ((findings, plan), made) = crate::name::comparisons::made_by(|| {
            let findings = crate::audit::audit(&inv, &obs);
            let plan = plan(&inv, &obs, &findings);
            (findings, plan)
        });
        assert_eq!(findings.len(), 2 * n, "a stale-dead and a missing-record per zone");
        let wanted = vec![(Action::Delete, "dead.test".to_string()), (Action::Add, "kms3.test".to_string())];
        assert!(plan.zones.iter().all(|z| changes(z) == wanted), "{:#?}", plan.zones[0]);
        made
    };
    let (small, large) = (work(300), work(1200));
    assert!(large <= 6 * small, "300 zones: {small} comparisons, 1200 zones: {large}");
}

/// What the daemon does beside the audit and the plan on each cycle (the TTL check, its
/// metrics, carrying out each zone's plan, which looks the zone up), and a failover's plan of
/// every zone: linear too. Each was a scan of every zone (or of a host's zone list) per zone.
#[test]
fn a_daemon_cycle_and_a_failover_plan_are_linear_in_the_zones() {
    let work = |n: usize| {
        let (inv, obs) = estate(n);
        let findings = crate::audit::audit(&inv, &obs);
        let from = DnsName::parse("dead.test").unwrap();
        let to = DnsName::parse("kms3.test").unwrap();
        let ((), made) = crate::name::comparisons::made_by(|| {
            crate::audit::ttl_findings(&inv, &obs);
            crate::daemon::metrics::Metrics::default().observe(&inv, &obs);
            assert!(obs.zones.iter().all(|v| inv.zone(&v.zone).is_some()));
            let (f, over) = crate::plan::failover::Failover::new(&inv, &from, &to);
            let plan = crate::plan::failover::plan(&over, &obs, &findings, &f);
            assert_eq!(plan.zones.len(), n);
        });
        made
    };
    let (small, large) = (work(300), work(1200));
    assert!(large <= 6 * small, "300 zones: {small} comparisons, 1200 zones: {large}");
}

mod peers;
