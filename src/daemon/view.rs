//! What this instance tells the others ([`crate::peers`]): after each audit, for every zone it
//! may write (`policy = "repair"`, `[instance] share_view = true`), its entry in the zone's
//! shared view: the hosts it sees alive and dead, by the hysteresis verdicts.
//!
//! An entry is written when what it says changes, and otherwise as a heartbeat once it is a
//! third of `stale_after` old, so that it stays fresh with a write or two to spare. The cost is
//! one UPDATE per zone per `stale_after / 3` (at the defaults, one a minute per zone: 10,000
//! zones are about 170 updates a second to their primaries, so a large estate wants a longer
//! `stale_after`, or `share_view = false` on instances that need not hold deletes back).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use crate::apply::view::{PublishError, ViewUpdate, publish};
use crate::apply::{Authority, CommitError, Mode};
use crate::audit::{Health, health};
use crate::inventory::{HostState, Inventory, KmsHost, Policy, Zone};
use crate::model::{Observation, ZoneView};
use crate::name::DnsName;
use crate::peers::{Entry, PeerViews, Sight};

/// What was last written for a zone.
struct Written {
    sight: Sight,
    strings: Vec<Vec<u8>>,
    at: Instant,
    /// Its `t=`.
    t: u64,
}

/// The entries this instance wrote, by zone, and the zones whose last write failed.
#[derive(Default)]
pub struct Publisher {
    written: HashMap<DnsName, Written>,
    failing: BTreeSet<DnsName>,
    /// Zones where another instance was seen writing under this one's id (warned once).
    clashes: BTreeSet<DnsName>,
}

/// What this instance sees of a zone's hosts (`view`, as observed): every SRV target (on its
/// record's port) and every active host the inventory publishes there (`active`); a host
/// without a verdict is in neither list.
pub fn sight(obs: &Observation, view: Option<&ZoneView>, active: &[&KmsHost]) -> Sight {
    let mut hosts: Vec<(&DnsName, u16)> = Vec::new();
    if let Some(view) = view {
        for r in view.servers.iter().filter_map(|s| s.srv.known_records()).flatten() {
            hosts.push((&r.target, r.port));
        }
    }
    for h in active {
        hosts.push((&h.name, h.port));
    }
    let (mut alive, mut dead) = (BTreeSet::new(), BTreeSet::new());
    for (name, port) in hosts {
        match health(obs, name, port) {
            Health::Up => {
                alive.insert(name.clone());
            }
            Health::Down(_) | Health::NotKms(_) => {
                dead.insert(name.clone());
            }
            Health::NoAddress | Health::Unknown(_) => {}
        }
    }
    // A host up on one port and down on another is alive: that keeps its record.
    dead.retain(|n| !alive.contains(n));
    Sight::Hosts { alive, dead }
}

impl Publisher {
    /// Writes the entries that changed or are due, concurrently under the inventory's bound.
    pub async fn publish_all(&mut self, inv: &Inventory, obs: &Observation, mode: Mode<'_>) {
        let me = &inv.instance;
        if !me.share_view {
            return;
        }
        // Indexed once, so that each zone costs the same with 10 zones or 10,000.
        let mut active_in: HashMap<&DnsName, Vec<&KmsHost>> = HashMap::new();
        for h in inv.hosts.iter().filter(|h| h.state == HostState::Active) {
            for z in &h.zones {
                active_in.entry(z).or_default().push(h);
            }
        }
        let views: HashMap<&DnsName, &ZoneView> = obs.zones.iter().map(|v| (&v.zone, v)).collect();
        let heartbeat = me.stale_after / 3;
        let now = crate::peers::unix_secs(obs.observed_at);
        let mut due: Vec<(&Zone, Sight, ViewUpdate)> = Vec::new();
        for zone in inv.zones.iter().filter(|z| z.policy == Policy::Repair) {
            let active = active_in.get(&zone.name).map_or(&[][..], Vec::as_slice);
            let sight = sight(obs, views.get(&zone.name).copied(), active);
            let last = self.written.get(&zone.name);
            // An entry of this id that this process did not write: two instances share an id,
            // and each would take the other's view for its own.
            if let (Some(w), Some(PeerViews::Read { entries })) = (last, obs.peers.get(&zone.name))
                && entries.iter().any(|e| e.id == me.id && e.at >= w.t && e.encode(&zone.name) != w.strings)
                && self.clashes.insert(zone.name.clone())
            {
                warn!(
                    zone = %zone.name,
                    "zone {}: another instance writes its view as {} too; give every instance its own [instance] id, or they do not see each other",
                    zone.name, me.id
                );
            }
            let fresh = last.is_some_and(|w| w.sight == sight && w.at.elapsed() < heartbeat);
            if fresh && !self.failing.contains(&zone.name) {
                continue;
            }
            let add = Entry { id: me.id.clone(), at: now, sight: sight.clone() }.encode(&zone.name);
            // This instance's records as the servers hold them, and the one it last wrote.
            let mut deletes: Vec<Vec<Vec<u8>>> = match obs.peers.get(&zone.name) {
                Some(PeerViews::Read { entries }) => {
                    entries.iter().filter(|e| e.id == me.id).map(|e| e.encode(&zone.name)).collect()
                }
                _ => vec![],
            };
            deletes.extend(last.map(|w| w.strings.clone()));
            deletes.sort();
            deletes.dedup();
            let ttl = u32::try_from(me.stale_after.as_secs()).unwrap_or(u32::MAX).max(1);
            due.push((zone, sight, ViewUpdate { zone: zone.name.clone(), deletes, add, ttl }));
        }
        let limit = Arc::new(tokio::sync::Semaphore::new(inv.defaults.concurrency));
        let timeout = crate::observe::worst_case(inv.defaults.timeout, inv.defaults.retries);
        let jobs = due.into_iter().map(|(zone, sight, update)| {
            let limit = limit.clone();
            async move {
                let _permit = limit.acquire().await;
                let result = write(inv, obs, zone, &update, mode, timeout).await;
                (zone, sight, update, result)
            }
        });
        for (zone, sight, update, result) in futures_util::future::join_all(jobs).await {
            match result {
                Ok(()) => {
                    let changed = self.written.get(&zone.name).is_none_or(|w| w.sight != sight);
                    if self.failing.remove(&zone.name) || changed {
                        info!(zone = %zone.name, "zone {}: this instance's view is now {}", zone.name, describe(&sight));
                    } else {
                        debug!(zone = %zone.name, "zone {}: view refreshed", zone.name);
                    }
                    self.written
                        .insert(zone.name.clone(), Written { sight, strings: update.add, at: Instant::now(), t: now });
                }
                Err(why) => {
                    if self.failing.insert(zone.name.clone()) {
                        warn!(
                            zone = %zone.name,
                            "zone {}: this instance's view could not be written, so other instances may delete what it sees alive: {why}",
                            zone.name
                        );
                    }
                }
            }
        }
    }

    /// Forgets zones no longer in the inventory.
    pub fn retain(&mut self, inv: &Inventory) {
        self.written.retain(|z, _| inv.zone(z).is_some());
        self.failing.retain(|z| inv.zone(z).is_some());
        self.clashes.retain(|z| inv.zone(z).is_some());
    }
}

async fn write(
    inv: &Inventory,
    obs: &Observation,
    zone: &Zone,
    update: &ViewUpdate,
    mode: Mode<'_>,
    timeout: Duration,
) -> Result<(), String> {
    let auth = crate::cycle::primary::auth_for(inv, zone, crate::cycle::primary::zone_mname(obs, zone).as_ref())?;
    let primary = crate::cycle::primary::primary(inv, obs, zone).await?;
    match publish(mode, Authority::Policy(zone.policy), primary, &auth, update, timeout).await {
        // Only zones with policy = "repair" are asked for; an audit-only one is not written.
        Ok(_) | Err(PublishError::Policy(CommitError::AuditOnly { .. })) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// "alive kms1, kms2; dead none".
fn describe(sight: &Sight) -> String {
    match sight {
        Sight::Overflow => "too large for its record: written as overflow (counts as seeing every host alive)".into(),
        Sight::Hosts { alive, dead } => {
            let list = |s: &BTreeSet<DnsName>| {
                if s.is_empty() {
                    "none".to_string()
                } else {
                    s.iter().map(DnsName::as_str).collect::<Vec<_>>().join(", ")
                }
            };
            format!("alive {}; dead {}", list(alive), list(dead))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ProbeState;
    use crate::testkit::{World, name};

    fn names(set: &[&str]) -> BTreeSet<DnsName> {
        set.iter().map(|n| name(n)).collect()
    }

    #[test]
    fn the_view_lists_what_answers_as_alive_what_does_not_as_dead_and_leaves_the_unknown_out() {
        let w = World::new(&["kms1.corp.test", "kms2.corp.test", "desk.corp.test"])
            .host("kms2.corp.test", 2, Some(ProbeState::Down("refused".into())))
            .host("desk.corp.test", 9, None);
        let active: Vec<&KmsHost> = w
            .inv
            .hosts
            .iter()
            .filter(|h| h.state == HostState::Active && h.zones.contains(&name("corp.test")))
            .collect();
        let seen = sight(&w.obs, w.obs.zones.first(), &active);
        let Sight::Hosts { alive, dead } = seen else { panic!("{seen:?}") };
        assert!(alive.contains(&name("kms1.corp.test")), "{alive:?}");
        assert_eq!(dead, names(&["kms2.corp.test"]));
        assert!(!alive.contains(&name("desk.corp.test")) && !dead.contains(&name("desk.corp.test")));
    }
}
