//! The shared-view rail: a delete for a dead host waits while another instance sees it alive.

use super::*;

/// kms1 up; kms2 dead here, spare not KMS, old decommissioned, g1 gone: four deletes asked.
fn estate() -> World {
    let targets = ["kms1.corp.test", "kms2.corp.test", "spare.corp.test", "old.corp.test", "g1.corp.test"];
    World::with_zone_settings(&format!("{REPAIR}\nmax_deletes = 10"), &targets)
        .host("kms2.corp.test", 2, down())
        .host("spare.corp.test", 3, Some(ProbeState::NotKms("bind_nak".into())))
        .resolution("g1.corp.test", Resolution::NoAddress)
}

#[test]
fn a_dead_host_another_instance_sees_alive_keeps_its_record_and_other_deletes_go() {
    let w = estate().peer("site-b", 5, &["kms1.corp.test", "kms2.corp.test"], &[]);
    let p = plan_of(&w);
    assert_eq!(
        changes(&p),
        vec![
            (Action::Delete, "g1.corp.test".into()),
            (Action::Delete, "spare.corp.test".into()),
            (Action::Delete, "old.corp.test".into()),
        ],
        "{p:#?}"
    );
    let why = held_for(&p, "kms2.corp.test");
    assert_eq!(why.len(), 1, "{p:#?}");
    assert!(why[0].contains("instance site-b saw it alive 5 s ago") && why[0].contains("split view"), "{}", why[0]);
}

#[test]
fn a_peer_that_sees_the_host_dead_or_a_stale_peer_does_not_hold_the_delete() {
    // stale_after is 3 × the default 60 s interval.
    for w in [
        estate().peer("site-b", 5, &["kms1.corp.test"], &["kms2.corp.test"]),
        estate().peer("site-b", 180, &["kms1.corp.test", "kms2.corp.test"], &[]),
        estate().peer("site-b", 5, &["kms1.corp.test"], &[]),
    ] {
        let p = plan_of(&w);
        assert!(changes(&p).contains(&(Action::Delete, "kms2.corp.test".into())), "{p:#?}");
    }
    // One fresh peer that sees it alive is enough, whatever the others say.
    let w = estate().peer("site-b", 5, &[], &["kms2.corp.test"]).peer("site-c", 179, &["kms2.corp.test"], &[]);
    assert_eq!(held_for(&plan_of(&w), "kms2.corp.test").len(), 1);
}

#[test]
fn an_unread_view_holds_the_deletes_for_dead_hosts_only() {
    let p = plan_of(&estate().peers_unknown("127.0.0.1:5300: timeout"));
    let why = held_for(&p, "kms2.corp.test");
    assert!(why.len() == 1 && why[0].contains("could not be read (127.0.0.1:5300: timeout)"), "{p:#?}");
    assert_eq!(p.deletes().count(), 3, "{p:#?}");
}

#[test]
fn a_reviewed_plan_is_held_at_apply_time_when_a_peer_sees_the_host_alive_now() {
    let planned = plan_of(&estate());
    assert!(changes(&planned).contains(&(Action::Delete, "kms2.corp.test".into())));
    let now = estate().peer("site-b", 1, &["kms2.corp.test"], &[]);
    let p = recheck_of(&planned, &now);
    assert!(!changes(&p).contains(&(Action::Delete, "kms2.corp.test".into())), "{p:#?}");
    assert!(held_for(&p, "kms2.corp.test")[0].contains("site-b"), "{p:#?}");
}

#[test]
fn this_instances_own_entry_does_not_count() {
    let mut w = estate();
    let me = w.inv.instance.id.to_string();
    w = w.peer(&me, 1, &["kms2.corp.test"], &[]);
    assert!(changes(&plan_of(&w)).contains(&(Action::Delete, "kms2.corp.test".into())));
}
