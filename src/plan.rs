//! The plan: (inventory, observation, findings) → the smallest set of record changes per zone
//! that fixes what can safely be fixed. Pure: no I/O, no clock.
//!
//! What each finding asks for:
//! - delete: `stale-decommissioned`, `stale-unresolvable`, `stale-dead`, `not-kms`, and
//!   `stale-unknown-host` only where the zone says `remove_unknown = true`;
//! - add: `missing-record` (the audit raises it only for hosts that answer as KMS now);
//! - replace: `record-drift`, a delete and an add in the same update.
//!
//! Safety rails, each of which holds changes back and says why:
//! - a zone whose servers could not all be read, or hold different records, gets no change at
//!   all: what they hold is not known, and a change planned on half the picture can clobber
//!   the other;
//! - when no target answers as KMS at all, dead, not-KMS and unresolvable targets are not
//!   deleted: a blind probe or a broken resolver on this side must not empty the zone;
//! - at most `max_deletes` records leave a zone per run (a replacement does not count: its
//!   host stays published);
//! - a zone that had a target answering as KMS is never left without one;
//! - a zone with `policy = "audit"` gets its plan shown, never applied.

use serde::{Deserialize, Serialize};

use crate::audit::{Code, Finding, Health, health, wanted_record};
use crate::inventory::{Inventory, Policy, Zone};
use crate::name::DnsName;
use crate::observe::{Observation, SrvRecord};

/// The plan for every zone of the inventory, in inventory order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub zones: Vec<ZonePlan>,
}

/// What to change in one zone's `_vlmcs._tcp` RRset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZonePlan {
    pub zone: DnsName,
    pub policy: Policy,
    /// The RRset as observed: the update's prerequisite is that it is still exactly this.
    pub before: Vec<SrvRecord>,
    pub changes: Vec<Change>,
    /// What a safety rail or the zone's settings held back, and why.
    pub held: Vec<Held>,
}

/// One record to delete or add, and the finding that asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub action: Action,
    pub record: SrvRecord,
    pub code: Code,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Delete,
    Add,
}

/// A change not planned, or a zone not touched, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub record: Option<SrvRecord>,
    pub reason: String,
}

impl ZonePlan {
    pub fn deletes(&self) -> impl Iterator<Item = &SrvRecord> {
        self.changes.iter().filter(|c| c.action == Action::Delete).map(|c| &c.record)
    }

    pub fn adds(&self) -> impl Iterator<Item = &SrvRecord> {
        self.changes.iter().filter(|c| c.action == Action::Add).map(|c| &c.record)
    }

    /// The RRset once the changes are made.
    pub fn after(&self) -> Vec<SrvRecord> {
        after(&self.before, &self.changes)
    }

    /// True when the plan would be sent: there are changes and the policy allows them.
    pub fn will_apply(&self) -> bool {
        self.policy == Policy::Repair && !self.changes.is_empty()
    }
}

fn after(before: &[SrvRecord], changes: &[Change]) -> Vec<SrvRecord> {
    let mut set: Vec<SrvRecord> = before
        .iter()
        .filter(|r| !changes.iter().any(|c| c.action == Action::Delete && c.record.same_rdata(r)))
        .cloned()
        .collect();
    for c in changes.iter().filter(|c| c.action == Action::Add) {
        if !set.iter().any(|r| r.same_rdata(&c.record)) {
            set.push(c.record.clone());
        }
    }
    set.sort();
    set
}

/// Plans every zone of the inventory.
pub fn plan(inv: &Inventory, obs: &Observation, findings: &[Finding]) -> Plan {
    let zones = inv.zones.iter().map(|z| plan_zone(inv, obs, findings, z)).collect();
    Plan { zones }
}

/// A delete with its urgency.
type Ranked = (u8, Change);

/// How soon a delete is made when `max_deletes` lets only some through: records that send
/// clients to a host that cannot serve them first.
fn urgency(code: Code) -> u8 {
    match code {
        Code::StaleDead | Code::StaleUnresolvable | Code::NotKms => 0,
        Code::StaleDecommissioned => 1,
        _ => 2,
    }
}

fn plan_zone(inv: &Inventory, obs: &Observation, findings: &[Finding], zone: &Zone) -> ZonePlan {
    let mut p =
        ZonePlan { zone: zone.name.clone(), policy: zone.policy, before: vec![], changes: vec![], held: vec![] };
    let zf: Vec<&Finding> = findings.iter().filter(|f| f.zone == zone.name).collect();
    let hold = |p: &mut ZonePlan, record: Option<SrvRecord>, reason: String| p.held.push(Held { record, reason });

    let Some(view) = obs.zones.iter().find(|v| v.zone == zone.name) else {
        hold(&mut p, None, "not planned: the zone was not observed".into());
        return p;
    };
    let unreadable: Vec<String> =
        view.servers.iter().filter(|s| s.srv.known_records().is_none()).map(|s| s.server.to_string()).collect();
    if !unreadable.is_empty() {
        hold(
            &mut p,
            None,
            format!("not planned: {} could not be read, so what it holds is unknown", unreadable.join(", ")),
        );
        return p;
    }
    // Servers that hold different records are a reason to wait; different SOA serials alone
    // are not (AD DCs keep their own serials, and a secondary lags a busy primary for a moment):
    // the update's prerequisite guards against acting on a stale copy.
    let rdata_sets: Vec<Vec<(DnsName, u16, u16, u16)>> = view
        .servers
        .iter()
        .filter_map(|s| s.srv.known_records())
        .map(|rs| {
            let mut v: Vec<_> = rs.iter().map(|r| (r.target.clone(), r.port, r.priority, r.weight)).collect();
            v.sort();
            v.dedup();
            v
        })
        .collect();
    if rdata_sets.windows(2).any(|w| w[0] != w[1]) {
        hold(
            &mut p,
            None,
            "not planned: the zone's servers disagree; let them converge (or fix transfers) first".into(),
        );
        return p;
    }
    p.before = view.servers.first().and_then(|s| s.srv.known_records()).map(<[SrvRecord]>::to_vec).unwrap_or_default();
    p.before.sort();

    // Deletes (with their urgency) and adds, as the findings ask.
    let mut deletes: Vec<Ranked> = Vec::new();
    let mut adds: Vec<Change> = Vec::new();
    for f in &zf {
        let Some(record) = f.record.clone() else { continue };
        let change = |action, record| Change { action, record, code: f.code, reason: f.message.clone() };
        match f.code {
            Code::StaleDecommissioned | Code::StaleUnresolvable | Code::StaleDead | Code::NotKms => {
                deletes.push((urgency(f.code), change(Action::Delete, record)));
            }
            Code::StaleUnknownHost if zone.remove_unknown => {
                deletes.push((urgency(f.code), change(Action::Delete, record)));
            }
            Code::StaleUnknownHost => hold(
                &mut p,
                Some(record),
                "not deleted: the host is unknown to the inventory and remove_unknown = false".into(),
            ),
            Code::RecordDrift => {
                let Some(host) = inv.host(&record.target) else { continue };
                let wanted = wanted_record(inv, host);
                deletes.push((urgency(f.code), change(Action::Delete, record)));
                if !p.before.iter().any(|r| r.same_rdata(&wanted)) {
                    adds.push(change(Action::Add, wanted));
                }
            }
            Code::MissingRecord => adds.push(change(Action::Add, record)),
            _ => {}
        }
    }
    deletes.sort_by(|a, b| (a.0, &a.1.record).cmp(&(b.0, &b.1.record)));
    adds.sort_by(|a, b| a.record.cmp(&b.record));
    adds.dedup_by(|a, b| a.record.same_rdata(&b.record));

    // When no target answers at all and no unpublished host does either, this host's view is
    // more likely broken (a firewall, the network) than every KMS host dead at once: deleting
    // on that evidence would empty the zone a run at a time.
    let up = |r: &SrvRecord| health(obs, &r.target, r.port) == Health::Up;
    if !p.before.is_empty() && !p.before.iter().any(up) && adds.is_empty() {
        let (spared, rest): (Vec<Ranked>, Vec<Ranked>) = deletes
            .into_iter()
            .partition(|(_, c)| matches!(c.code, Code::StaleDead | Code::NotKms | Code::StaleUnresolvable));
        for (_, c) in spared {
            let reason = "held back: no target of the zone answers as a KMS host, which looks like a problem on this side (firewall, network) rather than every host down";
            hold(&mut p, Some(c.record), reason.into());
        }
        deletes = rest;
    }

    // max_deletes counts records whose host leaves the zone; a replacement keeps its host.
    let mut kept: Vec<Change> = Vec::new();
    let mut removals = 0;
    for (_, d) in deletes {
        let replaced = adds.iter().any(|a| a.record.target == d.record.target);
        if !replaced && removals >= zone.max_deletes {
            let reason = format!("held back: at most max_deletes = {} records are removed per run", zone.max_deletes);
            hold(&mut p, Some(d.record), reason);
            continue;
        }
        removals += usize::from(!replaced);
        kept.push(d);
    }
    kept.extend(adds);

    // Never leave a zone without a working KMS host when it had one: keep the working targets
    // that were to go (a decommissioned or unknown host that still answers).
    if p.before.iter().any(up) && !after(&p.before, &kept).iter().any(up) {
        let (spared, rest): (Vec<Change>, Vec<Change>) =
            kept.into_iter().partition(|c| c.action == Action::Delete && up(&c.record));
        for c in spared {
            let reason =
                "held back: it is the zone's last target that answers as a KMS host; publish a working host first";
            hold(&mut p, Some(c.record), reason.into());
        }
        kept = rest;
    }
    p.changes = kept;
    if zone.policy == Policy::Audit && !p.changes.is_empty() {
        hold(&mut p, None, "shown, not applied: the zone's policy is \"audit\"".into());
    }
    p
}

#[cfg(test)]
mod tests;
