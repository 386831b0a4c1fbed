use super::*;

fn name(s: &str) -> DnsName {
    DnsName::parse(s).unwrap()
}

fn zone() -> DnsName {
    name("corp.test")
}

fn id(s: &str) -> InstanceId {
    InstanceId::parse(s).unwrap()
}

fn entry(who: &str, at: u64, alive: &[&str], dead: &[&str]) -> Entry {
    Entry {
        id: id(who),
        at,
        sight: Sight::Hosts {
            alive: alive.iter().map(|n| name(n)).collect(),
            dead: dead.iter().map(|n| name(n)).collect(),
        },
    }
}

fn strings(s: &str) -> Vec<Vec<u8>> {
    vec![s.as_bytes().to_vec()]
}

#[test]
fn an_entry_reads_back_as_written_with_names_relative_to_the_zone() {
    let e = entry("site-a", 1_733_100_000, &["kms1.corp.test", "kms.other.test"], &["kms2.corp.test"]);
    let written = e.encode(&zone());
    assert_eq!(written, strings("v=1 id=site-a t=1733100000 alive=kms.other.test.,kms1 dead=kms2"));
    assert_eq!(Entry::decode(&written, &zone()), Ok(e));
    let empty = entry("b", 5, &[], &[]);
    assert_eq!(empty.encode(&zone()), strings("v=1 id=b t=5 alive= dead="));
    assert_eq!(Entry::decode(&empty.encode(&zone()), &zone()), Ok(empty));
}

#[test]
fn a_long_view_is_split_into_strings_of_255_octets_and_joined_on_reading() {
    let hosts: Vec<String> = (0..60).map(|i| format!("kms-host-{i:03}.corp.test")).collect();
    let refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let e = entry("site-a", 7, &refs, &[]);
    let written = e.encode(&zone());
    assert!(written.len() > 1 && written.len() <= MAX_STRINGS, "{}", written.len());
    assert!(written.iter().all(|s| s.len() <= MAX_STRING));
    assert_eq!(Entry::decode(&written, &zone()), Ok(e));
}

#[test]
fn a_view_too_large_for_the_record_is_written_as_overflow_which_sees_every_host_alive() {
    let hosts: Vec<String> = (0..400).map(|i| format!("kms-host-{i:03}.corp.test")).collect();
    let refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let written = entry("site-a", 7, &[], &refs).encode(&zone());
    assert_eq!(written, strings("v=1 id=site-a t=7 overflow"));
    let read = Entry::decode(&written, &zone()).unwrap();
    assert_eq!(read.sight, Sight::Overflow);
    // Even a host it listed as dead counts as alive: the list was not kept.
    assert!(read.sees_alive(&name("kms-host-001.corp.test")) && !read.sees_dead(&name("kms-host-001.corp.test")));
}

#[test]
fn anything_that_is_not_exactly_an_entry_is_rejected() {
    for bad in [
        "",
        "hello",
        "v=2 id=a t=1 alive= dead=",
        "v=1 t=1 id=a alive= dead=",
        "v=1 id=-a t=1 alive= dead=",
        "v=1 id=a t=soon alive= dead=",
        "v=1 id=a t=-1 alive= dead=",
        "v=1 id=a t=1 alive=kms1",
        "v=1 id=a t=1 dead= alive=",
        "v=1 id=a t=1 alive=kms1 dead= extra=1",
        "v=1 id=a t=1 alive=bad..name dead=",
        "v=1 id=a t=1 alive=kms 1 dead=",
        "v=1  id=a t=1 alive= dead=",
        "v=1 id=a t=1 overflow alive=",
    ] {
        assert!(Entry::decode(&strings(bad), &zone()).is_err(), "{bad:?} was read");
    }
    assert!(Entry::decode(&[vec![0xff, 0xfe]], &zone()).is_err());
}

#[test]
fn instance_ids_are_dns_labels() {
    assert_eq!(InstanceId::parse("Site-A").unwrap().as_str(), "site-a");
    for bad in ["", "-a", "a-", "a.b", "a b", "a_b", &"x".repeat(64)] {
        assert!(InstanceId::parse(bad).is_err(), "{bad:?}");
    }
    assert!(InstanceId::parse(InstanceId::from_hostname().as_str()).is_ok());
}

#[test]
fn a_fresh_entry_that_sees_the_host_alive_holds_its_delete_and_a_stale_one_does_not() {
    let me = id("site-a");
    let stale_after = Duration::from_secs(6);
    let kms2 = name("kms2.corp.test");
    let views = PeerViews::Read {
        entries: vec![
            entry("site-a", 100, &[], &["kms2.corp.test"]),
            entry("site-b", 95, &["kms2.corp.test"], &[]),
            entry("site-c", 90, &["kms2.corp.test"], &[]),
        ],
    };
    let peers = Peers::of(Some(&views), &me, 100, stale_after);
    let Peers::Known { fresh, stale } = &peers else { panic!("{peers:?}") };
    assert_eq!(fresh.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["site-b"]);
    assert_eq!(stale.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["site-c"]);
    let why = peers.hold_delete(&kms2, 100).unwrap();
    assert!(why.contains("instance site-b saw it alive 5 s ago"), "{why}");
    assert!(!why.contains("site-c"), "{why}");
    // Once site-b's entry is as old as the bound, nothing holds the delete.
    assert_eq!(Peers::of(Some(&views), &me, 101, stale_after).hold_delete(&kms2, 101), None);
    // This instance's own entry never counts, whatever it says.
    let own = PeerViews::Read { entries: vec![entry("site-a", 100, &["kms2.corp.test"], &[])] };
    assert_eq!(Peers::of(Some(&own), &me, 100, stale_after).hold_delete(&kms2, 100), None);
}

#[test]
fn an_unread_view_holds_every_delete_for_a_dead_host_and_no_entries_hold_none() {
    let me = id("site-a");
    let kms2 = name("kms2.corp.test");
    let unknown = PeerViews::Unknown { why: "127.0.0.1:53: timeout".into() };
    let why = Peers::of(Some(&unknown), &me, 0, Duration::from_secs(6)).hold_delete(&kms2, 0).unwrap();
    assert!(why.contains("could not be read (127.0.0.1:53: timeout)"), "{why}");
    assert!(Peers::of(None, &me, 0, Duration::from_secs(6)).hold_delete(&kms2, 0).is_some());
    let empty = PeerViews::Read { entries: vec![] };
    assert_eq!(Peers::of(Some(&empty), &me, 0, Duration::from_secs(6)).hold_delete(&kms2, 0), None);
}

#[test]
fn an_entry_from_a_clock_ahead_counts_as_fresh_and_an_overflow_holds_every_delete() {
    let me = id("site-a");
    let ahead = PeerViews::Read { entries: vec![entry("site-b", 200, &["kms2.corp.test"], &[])] };
    let why = Peers::of(Some(&ahead), &me, 100, Duration::from_secs(6)).hold_delete(&name("kms2.corp.test"), 100);
    assert!(why.unwrap().contains("ahead of this host's clock"));
    let overflow = PeerViews::Read { entries: vec![Entry { id: id("site-b"), at: 100, sight: Sight::Overflow }] };
    let peers = Peers::of(Some(&overflow), &me, 100, Duration::from_secs(6));
    assert!(peers.hold_delete(&name("anything.corp.test"), 100).unwrap().contains("too many hosts"));
}

#[test]
fn the_owner_name_is_beside_the_srv_records_not_under_them() {
    assert_eq!(owner(&zone()).as_str(), "_kmsdns-view.corp.test");
    assert!(!owner(&zone()).is_within(&zone().vlmcs_owner()));
}
