//! A failover as the planner sees it: an inventory override run through the same audit and
//! the same planner as every other command.
//!
//! The admin says "`from` is gone, `to` takes over". [`Failover::new`] turns that into an
//! inventory in which `from` is decommissioned and `to` is an active host of every zone `from`
//! published in; the audit of that inventory then finds `from`'s records stale
//! (`stale-decommissioned`) and `to`'s missing (`missing-record`, raised only when `to`
//! answers as a KMS host), and [`plan`] makes of those findings, and of nothing else, one
//! change per zone.
//!
//! A failover is a decision the admin has made, so two rails do not apply, and each zone's plan
//! says so in [`ZonePlan::overrides`]:
//! - a server that could not be read does not hold the zone back, as long as some server was
//!   read (servers that were read must still agree); the update's prerequisite is checked by
//!   the primary, and the verification names every server that lags;
//! - `max_deletes` does not limit the deletes of the host the admin named.
//!
//! Every other rail holds: the prerequisite (what another writer did is never overwritten),
//! the last working target, and the zone's policy (written only with `--override-policy`).

use std::collections::BTreeSet;

use super::{Action, ByZone, Held, Plan, ZonePlan, asked, empty_plan, rails, readable_rrset};
use crate::audit::Finding;
use crate::inventory::{HostState, Inventory, KmsHost, Zone};
use crate::model::{Observation, SrvAnswer, ZoneView};
use crate::name::DnsName;

/// What the admin asked for, as the planner needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failover {
    pub from: DnsName,
    pub to: DnsName,
    /// The zones the failover changes: `from`'s zones, or every zone when the inventory does
    /// not say (then only zones that publish `from` get a change).
    pub zones: Vec<DnsName>,
    /// `from` is a host of the inventory. When it is not, a zone that does not publish it is
    /// left alone: a mistyped `--from` must not publish `to` everywhere.
    pub from_known: bool,
}

impl Failover {
    /// The failover and the inventory it plans with (see the module doc). `to`, when the
    /// inventory does not know it, is published with the inventory's default port, priority 0
    /// and weight 0.
    pub fn new(inv: &Inventory, from: &DnsName, to: &DnsName) -> (Failover, Inventory) {
        let old = inv.host(from);
        let zones: Vec<DnsName> = match old {
            Some(h) if !h.zones.is_empty() => h.zones.clone(),
            _ => inv.zones.iter().map(|z| z.name.clone()).collect(),
        };
        let failover = Failover { from: from.clone(), to: to.clone(), zones: zones.clone(), from_known: old.is_some() };
        let mut over = inv.clone();
        let host = |name: &DnsName, state| KmsHost {
            name: name.clone(),
            zones: vec![],
            state,
            port: inv.defaults.port,
            priority: 0,
            weight: 0,
            account: None,
        };
        match over.hosts.iter_mut().find(|h| &h.name == from) {
            Some(h) => h.state = HostState::Decommissioned,
            None => over.hosts.push(host(from, HostState::Decommissioned)),
        }
        let new = match over.hosts.iter().position(|h| &h.name == to) {
            Some(i) => &mut over.hosts[i],
            None => {
                over.hosts.push(host(to, HostState::Active));
                over.hosts.last_mut().expect("just pushed")
            }
        };
        new.state = HostState::Active;
        let mut has: std::collections::HashSet<DnsName> = new.zones.iter().cloned().collect();
        for z in &zones {
            if has.insert(z.clone()) {
                new.zones.push(z.clone());
            }
        }
        (failover, over)
    }

    /// The targets a failover may change records of.
    fn concerns(&self, target: &DnsName) -> bool {
        target == &self.from || target == &self.to
    }
}

/// The failover's plan: one zone plan per zone of the failover, in inventory order, each
/// holding only changes to `from`'s and `to`'s records. `inv` is the overridden inventory.
pub fn plan(inv: &Inventory, obs: &Observation, findings: &[Finding], f: &Failover) -> Plan {
    let by_zone = ByZone::new(obs, findings);
    let of_failover: std::collections::HashSet<&DnsName> = f.zones.iter().collect();
    let zones = inv
        .zones
        .iter()
        .filter(|z| of_failover.contains(&z.name))
        .map(|z| plan_zone(inv, obs, &by_zone, z, f))
        .collect();
    Plan { zones }
}

fn plan_zone(inv: &Inventory, obs: &Observation, by_zone: &ByZone, zone: &Zone, f: &Failover) -> ZonePlan {
    let mut p = empty_plan(zone.name.clone(), zone.policy);
    let (view, unread) = without_unread_servers(by_zone.view(&zone.name));
    let before = match readable_rrset(view.as_ref()) {
        Ok(before) => before,
        Err((reason, servers)) => {
            p.held.push(Held { record: None, reason: format!("not planned: {reason}") });
            p.servers = servers;
            return p;
        }
    };
    if !unread.is_empty() {
        p.overrides.push(format!(
            "{} could not be read; a failover goes on without it (the primary checks the prerequisite, and the verification names every server that lags)",
            unread.join(", ")
        ));
    }
    p.before = before;
    let mut asked = asked(inv, zone, &p.before, by_zone.findings(&zone.name));
    asked.deletes.retain(|(_, c)| f.concerns(&c.record.target));
    asked.adds.retain(|c| f.concerns(&c.record.target));
    asked.held.retain(|h| h.record.as_ref().is_some_and(|r| f.concerns(&r.target)));
    p.held.extend(asked.held);
    let removals =
        asked.deletes.iter().filter(|(_, d)| !asked.adds.iter().any(|a| a.record.target == d.record.target)).count();
    if removals > zone.max_deletes {
        p.overrides.push(format!(
            "max_deletes = {} does not limit a failover: the admin named the host to remove",
            zone.max_deletes
        ));
    }
    p.changes = rails(inv, obs, &zone.name, &p.before, asked.deletes, asked.adds, &mut p.held, usize::MAX);
    if !f.from_known && !p.changes.iter().any(|c| c.action == Action::Delete) {
        p.changes.clear();
    }
    p
}

/// The zone's view without the servers that could not be read, and their names; the view as
/// it is when none was read, so that the zone is held as unknown.
fn without_unread_servers(view: Option<&ZoneView>) -> (Option<ZoneView>, Vec<String>) {
    let Some(view) = view else { return (None, vec![]) };
    let (read, unread): (Vec<_>, Vec<_>) =
        view.servers.iter().cloned().partition(|s| !matches!(s.srv, SrvAnswer::Failed { .. }));
    if read.is_empty() {
        return (Some(view.clone()), vec![]);
    }
    let names: BTreeSet<String> = unread.iter().map(|s| s.server.to_string()).collect();
    (Some(ZoneView { zone: view.zone.clone(), servers: read }), names.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::audit;
    use crate::model::{ProbeState, ReadError, Resolution};
    use crate::testkit::{World, failed, name, records};

    /// kms1 published and dead, a ghost published that has no address, the standby spare up.
    fn world() -> World {
        World::new(&["kms1.corp.test", "ghost.corp.test"])
            .host("kms1.corp.test", 1, Some(ProbeState::Down("refused".into())))
            .resolution("ghost.corp.test", Resolution::NoAddress)
    }

    fn failover_plan(w: &World, from: &str, to: &str) -> Vec<ZonePlan> {
        let (f, over) = Failover::new(&w.inv, &name(from), &name(to));
        let findings = audit(&over, &w.obs);
        plan(&over, &w.obs, &findings, &f).zones
    }

    fn changes(p: &ZonePlan) -> Vec<(Action, String)> {
        p.changes.iter().map(|c| (c.action, c.record.target.to_string())).collect()
    }

    #[test]
    fn the_old_host_goes_and_the_new_one_comes_and_nothing_else_is_touched() {
        let zones = failover_plan(&world(), "kms1.corp.test", "spare.corp.test");
        assert_eq!(zones.len(), 1);
        let p = &zones[0];
        assert_eq!(changes(p), [(Action::Delete, "kms1.corp.test".into()), (Action::Add, "spare.corp.test".into())]);
        // The ghost is the audit's business, not the failover's.
        assert!(p.held.is_empty() && p.overrides.is_empty(), "{p:#?}");
    }

    #[test]
    fn an_unreadable_server_does_not_hold_the_failover_and_the_plan_says_so() {
        let w = world().server(1, failed(ReadError::Timeout));
        let p = &failover_plan(&w, "kms1.corp.test", "spare.corp.test")[0];
        assert_eq!(changes(p).len(), 2, "{p:#?}");
        assert_eq!(p.overrides.len(), 1);
        assert!(p.overrides[0].contains("127.0.0.1:5301 could not be read"), "{:?}", p.overrides);
        // The normal planner holds the same zone.
        let findings = w.findings();
        assert!(crate::plan::plan(&w.inv, &w.obs, &findings).zones[0].changes.is_empty());
    }

    #[test]
    fn a_zone_no_server_could_read_is_held_as_unknown() {
        let w = world().server(0, failed(ReadError::Timeout)).server(1, failed(ReadError::Timeout));
        let p = &failover_plan(&w, "kms1.corp.test", "spare.corp.test")[0];
        assert!(p.changes.is_empty());
        assert!(p.held[0].reason.starts_with("not planned:"), "{p:#?}");
    }

    #[test]
    fn servers_that_disagree_hold_the_failover_too() {
        let w = world().server(1, records(&["kms2.corp.test"]));
        let p = &failover_plan(&w, "kms1.corp.test", "spare.corp.test")[0];
        assert!(p.changes.is_empty() && p.held[0].reason.contains("disagree"), "{p:#?}");
    }

    #[test]
    fn a_mistyped_old_host_publishes_nothing() {
        let zones = failover_plan(&world(), "kms9.corp.test", "spare.corp.test");
        assert!(zones.iter().all(|p| p.changes.is_empty()), "{zones:#?}");
    }

    #[test]
    fn a_new_host_that_does_not_answer_is_not_added() {
        let w = world().host("spare.corp.test", 3, Some(ProbeState::Down("refused".into())));
        let p = &failover_plan(&w, "kms1.corp.test", "spare.corp.test")[0];
        assert_eq!(changes(p), [(Action::Delete, "kms1.corp.test".into())]);
    }

    #[test]
    fn the_override_inventory_decommissions_the_old_host_and_activates_the_new_one_in_its_zones() {
        let w = world();
        let (f, over) = Failover::new(&w.inv, &name("kms1.corp.test"), &name("new.corp.test"));
        assert_eq!(f.zones, [name("corp.test")]);
        assert_eq!(over.host(&name("kms1.corp.test")).unwrap().state, HostState::Decommissioned);
        let new = over.host(&name("new.corp.test")).unwrap();
        assert_eq!((new.state, new.zones.clone(), new.port), (HostState::Active, vec![name("corp.test")], 1688));
        assert_eq!(
            w.inv.host(&name("kms1.corp.test")).unwrap().state,
            HostState::Active,
            "the inventory itself is unchanged"
        );
    }
}
