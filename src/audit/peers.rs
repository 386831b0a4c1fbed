//! What the instances' shared view says ([`crate::peers`]), as findings:
//! - `split-view`: this instance and a fresh entry of another disagree about a host (one sees
//!   it answer as a KMS host, the other sees it dead); its record is kept until they agree;
//! - `peer-stale`: another instance's entry is older than `stale_after` and no longer counts;
//! - `peer-view-unreadable`: the view could not be read or holds a record that is not an
//!   entry, so no delete for a dead host is made in the zone (not said of a zone with a
//!   server that could not be read: that is `server-unreachable`, and holds every change).
//!
//! A zone whose view was not read at all (an observation made by hand) gives none of them.

use std::collections::{BTreeMap, HashMap};

use super::{Code, Finding, Health, health};
use crate::inventory::{HostState, Inventory};
use crate::name::DnsName;
use crate::peers::{Entry, PeerViews, Peers, ago, owner, unix_secs};

pub fn audit_peers(inv: &Inventory, obs: &crate::model::Observation) -> Vec<Finding> {
    let me = &inv.instance;
    let now = unix_secs(obs.observed_at);
    // Indexed once, so that each zone costs the same with 10 zones or 10,000.
    let mut active_in: HashMap<&DnsName, Vec<&crate::inventory::KmsHost>> = HashMap::new();
    for h in inv.hosts.iter().filter(|h| h.state == HostState::Active) {
        for z in &h.zones {
            active_in.entry(z).or_default().push(h);
        }
    }
    let mut out = Vec::new();
    for view in &obs.zones {
        let zone = &view.zone;
        let Some(views) = obs.peers.get(zone) else { continue };
        let finding = |code: Code, target: Option<DnsName>, message: String, fix: String| Finding {
            code,
            severity: code.severity(),
            zone: zone.clone(),
            server: None,
            record: None,
            target,
            message,
            fix,
        };
        if let PeerViews::Unknown { why } = views {
            // A server that could not be read is already `server-unreachable`, and its zone
            // gets no change at all: the view adds nothing to say.
            if view.servers.iter().any(|s| s.srv.known_records().is_none()) {
                continue;
            }
            out.push(finding(
                Code::PeerViewUnreadable,
                None,
                format!(
                    "the instances' shared view ({} TXT) could not be read: {why}; instance {} deletes no record of {zone} for a dead host until it can",
                    owner(zone),
                    me.id
                ),
                format!(
                    "check that every server of {zone} answers for {}; a record there that is not a kmsdns entry must be removed by hand",
                    owner(zone)
                ),
            ));
            continue;
        }
        let peers = Peers::of(Some(views), &me.id, now, me.stale_after);
        let Peers::Known { fresh, stale } = &peers else { continue };

        // Every host of the zone this instance judged: the SRV targets (on their record's
        // port) and the active hosts the inventory publishes there.
        // With no fresh entry of another instance there is nothing to disagree with.
        let mut hosts: BTreeMap<&DnsName, u16> = BTreeMap::new();
        if !fresh.is_empty() {
            for r in view.servers.iter().filter_map(|s| s.srv.known_records()).flatten() {
                hosts.entry(&r.target).or_insert(r.port);
            }
            for h in active_in.get(zone).into_iter().flatten() {
                hosts.entry(&h.name).or_insert(h.port);
            }
        }
        for (host, port) in hosts {
            let (alive, dead) = peers.split(host);
            let list = |es: &[&Entry], what: &str| -> String {
                es.iter()
                    .map(|e| format!("instance {} saw it {what} {}", e.id, ago(e.at, now)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let message = match health(obs, host, port) {
                Health::Down(why) | Health::NotKms(why) if !alive.is_empty() => format!(
                    "instance {} sees {host} dead ({why}), but {}: the instances disagree, so its record is kept until they agree",
                    me.id,
                    list(&alive, "alive")
                ),
                Health::Up if !dead.is_empty() => format!(
                    "instance {} sees {host} answer as a KMS host, but {}: the instances disagree, so its record is kept until they agree",
                    me.id,
                    list(&dead, "dead")
                ),
                _ => continue,
            };
            out.push(finding(
                Code::SplitView,
                Some(host.clone()),
                message,
                format!(
                    "check the network between each instance and {host}:{port} (firewall, routing): clients at the site that cannot reach it cannot activate against it either"
                ),
            ));
        }

        // A lagging secondary may still hold an older entry of an instance whose newer one is
        // fresh: only an instance with no fresh entry has gone quiet.
        let mut quiet: BTreeMap<&str, &Entry> = BTreeMap::new();
        for e in stale.iter().filter(|e| !fresh.iter().any(|f| f.id == e.id)) {
            let newest = quiet.entry(e.id.as_str()).or_insert(e);
            if e.at > newest.at {
                *newest = e;
            }
        }
        for e in quiet.values() {
            out.push(finding(
                Code::PeerStale,
                None,
                format!(
                    "instance {}'s entry in the shared view was written {}, longer ago than stale_after ({}): it no longer counts, and instance {} decides alone about the hosts it saw alive",
                    e.id,
                    ago(e.at, now),
                    humantime::format_duration(me.stale_after),
                    me.id
                ),
                format!(
                    "check that kmsdns runs at instance {} and can update {zone}; if that instance is gone for good, delete its record: `nsupdate`, then `update delete {}. TXT \"v=1 id={} t={} …\"` with its whole text as `dig {} TXT` shows it",
                    e.id,
                    owner(zone),
                    e.id,
                    e.at,
                    owner(zone)
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::audit::Code;
    use crate::model::ProbeState;
    use crate::testkit::World;

    fn codes(w: &World) -> Vec<(Code, String)> {
        w.findings()
            .into_iter()
            .filter(|f| matches!(f.code, Code::SplitView | Code::PeerStale | Code::PeerViewUnreadable))
            .map(|f| (f.code, f.message))
            .collect()
    }

    fn down() -> Option<ProbeState> {
        Some(ProbeState::Down("no answer within 300ms".into()))
    }

    #[test]
    fn a_host_seen_dead_here_and_alive_elsewhere_is_a_split_view_on_both_sides() {
        let here = World::new(&["kms1.corp.test", "kms2.corp.test"]).host("kms2.corp.test", 2, down()).peer(
            "site-b",
            3,
            &["kms1.corp.test", "kms2.corp.test"],
            &[],
        );
        let found = codes(&here);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, Code::SplitView);
        assert!(
            found[0].1.contains("sees kms2.corp.test dead (127.0.0.2:1688: no answer within 300ms)"),
            "{}",
            found[0].1
        );
        assert!(found[0].1.contains("instance site-b saw it alive 3 s ago"), "{}", found[0].1);
        let there = World::new(&["kms1.corp.test", "kms2.corp.test"]).peer(
            "site-a",
            2,
            &["kms1.corp.test"],
            &["kms2.corp.test"],
        );
        let found = codes(&there);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].1.contains("sees kms2.corp.test answer as a KMS host, but instance site-a saw it dead 2 s ago")
        );
    }

    #[test]
    fn agreement_says_nothing_and_a_quiet_instance_is_reported_stale_once() {
        let agree = World::new(&["kms1.corp.test"]).peer("site-b", 3, &["kms1.corp.test"], &[]);
        assert_eq!(codes(&agree), vec![]);
        // The default stale_after is 3 × 60 s; an older copy beside a fresh entry is a lagging secondary.
        let quiet = World::new(&["kms1.corp.test"])
            .peer("site-b", 3, &["kms1.corp.test"], &[])
            .peer("site-b", 400, &["kms1.corp.test"], &[])
            .peer("site-c", 500, &["kms1.corp.test"], &[])
            .peer("site-c", 900, &[], &[]);
        let found = codes(&quiet);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, Code::PeerStale);
        assert!(
            found[0].1.contains("instance site-c's entry in the shared view was written 500 s ago"),
            "{}",
            found[0].1
        );
    }

    #[test]
    fn an_unreadable_view_is_reported() {
        let w = World::new(&["kms1.corp.test"]).peers_unknown("127.0.0.1:5300 holds a record that is not an entry");
        let found = codes(&w);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, Code::PeerViewUnreadable);
        assert!(found[0].1.contains("_kmsdns-view.corp.test TXT") && found[0].1.contains("deletes no record"));
    }
}
