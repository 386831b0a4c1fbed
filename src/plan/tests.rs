//! The planner: what each finding asks for, and each safety rail.

use super::*;
use crate::observe::{ProbeState, ReadError, Resolution, SrvAnswer};
use crate::testkit::{World, failed, records, srv};

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
