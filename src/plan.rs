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
//! - a delete because a host is dead (`stale-dead`) waits while another instance's fresh
//!   entry in the zone's shared view sees the host alive, or while that view could not be
//!   read ([`crate::peers`]): dead only when every instance that can judge agrees;
//! - a zone whose servers could not all be read, or hold different records, gets no change at
//!   all: what they hold is not known, and a change planned on half the picture can clobber
//!   the other;
//! - when no target answers as KMS at all, dead, not-KMS and unresolvable targets are not
//!   deleted: a blind probe or a broken resolver on this side must not empty the zone;
//! - at most `max_deletes` records leave a zone per run (a replacement does not count: its
//!   host stays published);
//! - a zone that had a target answering as KMS is never left without one;
//! - a zone with `policy = "audit"` gets its plan shown, never applied.
//!
//! A plan read back from a file (`kmsdns apply`) goes through [`recheck`]: the same rails, on
//! the observation and findings of the moment it is applied, and only the changes that the
//! planner would still make then. A plan file is a reviewed subset of what may be done, never
//! an instruction.

pub mod failover;
pub mod file;

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::audit::{Code, Finding, Health, health, wanted_record};
use crate::inventory::{Inventory, Policy, Zone};
use crate::model::{Observation, SrvAnswer, SrvRecord, ZoneView, same_rrset};
use crate::name::DnsName;

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
    /// Set when the zone was held because its servers could not all be read or disagree: what
    /// each server holds, or why that is unknown. `before` is then empty and means nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<ServerHolding>,
    /// The rails this plan does not apply, each with why: only a failover's plan has any
    /// ([`failover`]), and it states them here so that what it skips is shown, not hidden.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
}

/// What one server of a zone holds, or why that is unknown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerHolding {
    pub server: String,
    pub holds: Holding,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Holding {
    /// The server answered: these records (none for NODATA or NXDOMAIN).
    Records { records: Vec<SrvRecord> },
    /// The server could not be read.
    Unknown { why: String },
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

    /// True when none of the zone's servers could be read: nothing at all is known of its
    /// records, which is critical (as `server-unreachable` is in the audit).
    pub fn unread_everywhere(&self) -> bool {
        !self.servers.is_empty() && self.servers.iter().all(|s| matches!(s.holds, Holding::Unknown { .. }))
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
    let by_zone = ByZone::new(obs, findings);
    let zones = inv.zones.iter().map(|z| plan_zone(inv, obs, &by_zone, z)).collect();
    Plan { zones }
}

/// The observation and the findings looked up by zone, built once per plan, so that each zone
/// costs the same with 10 zones or 10,000.
struct ByZone<'a> {
    /// The first view of each zone, as a scan of `obs.zones` would find it.
    views: HashMap<&'a DnsName, &'a ZoneView>,
    /// Each zone's findings, in their order.
    findings: HashMap<&'a DnsName, Vec<&'a Finding>>,
}

impl<'a> ByZone<'a> {
    fn new(obs: &'a Observation, findings: &'a [Finding]) -> ByZone<'a> {
        let mut views = HashMap::with_capacity(obs.zones.len());
        for v in &obs.zones {
            views.entry(&v.zone).or_insert(v);
        }
        let mut by_zone: HashMap<&DnsName, Vec<&Finding>> = HashMap::new();
        for f in findings {
            by_zone.entry(&f.zone).or_default().push(f);
        }
        ByZone { views, findings: by_zone }
    }

    fn view(&self, zone: &DnsName) -> Option<&'a ZoneView> {
        self.views.get(zone).copied()
    }

    fn findings(&self, zone: &DnsName) -> &[&'a Finding] {
        self.findings.get(zone).map_or(&[], Vec::as_slice)
    }
}

/// Checks planned zones (a plan file, reviewed earlier) again against the inventory, the
/// observation and the findings of now, with the planner's own rails. A change goes only if
/// a finding of now still asks for it and no rail holds it now; every other is held, by
/// record, with the reason. The plan's `before` must be what the servers hold now.
pub fn recheck(inv: &Inventory, obs: &Observation, findings: &[Finding], planned: &[ZonePlan]) -> Plan {
    let by_zone = ByZone::new(obs, findings);
    let mut declared: HashMap<&DnsName, &Zone> = HashMap::with_capacity(inv.zones.len());
    for z in &inv.zones {
        declared.entry(&z.name).or_insert(z);
    }
    let mut seen = HashSet::with_capacity(planned.len());
    let zones = planned
        .iter()
        .map(|zp| {
            if !seen.insert(&zp.zone) {
                let mut p = empty_plan(zp.zone.clone(), zp.policy);
                p.before = zp.before.clone();
                hold_all(&mut p, zp, "the plan names the zone more than once");
                return p;
            }
            recheck_zone(inv, declared.get(&zp.zone).copied(), obs, &by_zone, zp)
        })
        .collect();
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

/// What the findings of a zone ask for, before any rail.
struct Asked {
    deletes: Vec<Ranked>,
    adds: Vec<Change>,
    /// Findings that ask for nothing by the zone's settings, with the reason.
    held: Vec<Held>,
}

fn plan_zone(inv: &Inventory, obs: &Observation, by_zone: &ByZone, zone: &Zone) -> ZonePlan {
    let mut p = empty_plan(zone.name.clone(), zone.policy);
    let before = match readable_rrset(by_zone.view(&zone.name)) {
        Ok(before) => before,
        Err((reason, servers)) => {
            p.held.push(Held { record: None, reason: format!("not planned: {reason}") });
            p.servers = servers;
            return p;
        }
    };
    p.before = before;
    let asked = asked(inv, zone, &p.before, by_zone.findings(&zone.name));
    p.held.extend(asked.held);
    p.changes = rails(inv, obs, &zone.name, &p.before, asked.deletes, asked.adds, &mut p.held, zone.max_deletes);
    hold_by_policy(&mut p);
    p
}

/// `zone` is the inventory's zone of that name, if it declares one.
fn recheck_zone(
    inv: &Inventory,
    zone: Option<&Zone>,
    obs: &Observation,
    by_zone: &ByZone,
    planned: &ZonePlan,
) -> ZonePlan {
    let Some(zone) = zone else {
        let mut p = empty_plan(planned.zone.clone(), planned.policy);
        p.before = planned.before.clone();
        hold_all(&mut p, planned, "the zone is not in the inventory");
        return p;
    };
    // The inventory's word on the policy, not the plan's.
    let mut p = empty_plan(zone.name.clone(), zone.policy);
    let now = match readable_rrset(by_zone.view(&zone.name)) {
        Ok(now) => now,
        Err((reason, servers)) => {
            p.servers = servers;
            hold_all(&mut p, planned, &reason);
            return p;
        }
    };
    p.before = now;
    // Both ways: a hand-written `before` may repeat a record.
    if !same_rrset(&p.before, &planned.before) || !same_rrset(&planned.before, &p.before) {
        hold_all(&mut p, planned, "the zone's RRset now is not the one the plan was made from; make a new plan");
        return p;
    }
    let asked = asked(inv, zone, &p.before, by_zone.findings(&zone.name));
    // A change as written: the action and the whole record, TTL included.
    let same = |a: &Change, b: &Change| a.action == b.action && a.record == b.record;
    let in_plan = |c: &Change| planned.changes.iter().any(|pc| same(pc, c));
    for c in &planned.changes {
        if asked.deletes.iter().map(|(_, d)| d).chain(&asked.adds).any(|a| same(a, c)) {
            continue;
        }
        let reason = match asked.held.iter().find(|h| h.record.as_ref() == Some(&c.record)) {
            Some(h) => format!("not sent: {}", h.reason),
            None => "not sent: no finding of now asks for it".to_string(),
        };
        p.held.push(Held { record: Some(c.record.clone()), reason });
    }
    // What goes is what the planner would send now, restricted to what was reviewed.
    let deletes = asked.deletes.into_iter().filter(|(_, d)| in_plan(d)).collect();
    let adds = asked.adds.into_iter().filter(|a| in_plan(a)).collect();
    p.changes = rails(inv, obs, &zone.name, &p.before, deletes, adds, &mut p.held, zone.max_deletes);
    hold_by_policy(&mut p);
    p
}

fn empty_plan(zone: DnsName, policy: Policy) -> ZonePlan {
    ZonePlan { zone, policy, before: vec![], changes: vec![], held: vec![], servers: vec![], overrides: vec![] }
}

/// Holds every change of `planned`, each by its record, for one reason that concerns the zone.
fn hold_all(p: &mut ZonePlan, planned: &ZonePlan, reason: &str) {
    for c in &planned.changes {
        p.held.push(Held { record: Some(c.record.clone()), reason: format!("not sent: {reason}") });
    }
    if planned.changes.is_empty() {
        p.held.push(Held { record: None, reason: format!("not sent: {reason}") });
    }
}

/// The first rail: the zone's RRset, when every server could be read and they all hold the
/// same records. Otherwise why not, with what each server holds (or that it is unknown).
fn readable_rrset(view: Option<&ZoneView>) -> Result<Vec<SrvRecord>, (String, Vec<ServerHolding>)> {
    let Some(view) = view else {
        return Err(("the zone was not observed".into(), vec![]));
    };
    let servers: Vec<ServerHolding> = view
        .servers
        .iter()
        .map(|s| ServerHolding {
            server: s.server.to_string(),
            holds: match &s.srv {
                SrvAnswer::Records { records } => Holding::Records { records: records.clone() },
                SrvAnswer::NoData | SrvAnswer::NxDomain => Holding::Records { records: vec![] },
                SrvAnswer::Failed { error } => Holding::Unknown { why: error.to_string() },
            },
        })
        .collect();
    let mut unreadable: Vec<&str> = Vec::new();
    let mut rrsets: Vec<&[SrvRecord]> = Vec::new();
    for s in &servers {
        match &s.holds {
            Holding::Records { records } => rrsets.push(records),
            Holding::Unknown { .. } => unreadable.push(&s.server),
        }
    }
    if !unreadable.is_empty() {
        let reason = format!("{} could not be read, so what it holds is unknown", unreadable.join(", "));
        return Err((reason, servers));
    }
    // Servers that hold different records are a reason to wait; different SOA serials alone
    // are not (AD DCs keep their own serials, and a secondary lags a busy primary for a moment):
    // the update's prerequisite guards against acting on a stale copy.
    let rdata = |rs: &[SrvRecord]| {
        let mut v: Vec<_> = rs.iter().map(|r| (r.target.clone(), r.port, r.priority, r.weight)).collect();
        v.sort();
        v.dedup();
        v
    };
    if rrsets.windows(2).any(|w| rdata(w[0]) != rdata(w[1])) {
        let reason = "the zone's servers disagree; let them converge (or fix transfers) first".to_string();
        return Err((reason, servers));
    }
    let Some(first) = rrsets.first() else {
        return Err(("the zone has no server to read, so what it holds is unknown".into(), servers));
    };
    let mut before = first.to_vec();
    before.sort();
    Ok(before)
}

/// Deletes (with their urgency) and adds, as the zone's findings (`findings`) ask.
fn asked(inv: &Inventory, zone: &Zone, before: &[SrvRecord], findings: &[&Finding]) -> Asked {
    let mut out = Asked { deletes: vec![], adds: vec![], held: vec![] };
    for f in findings {
        let Some(record) = f.record.clone() else { continue };
        let change = |action, record| Change { action, record, code: f.code, reason: f.message.clone() };
        match f.code {
            Code::StaleDecommissioned | Code::StaleUnresolvable | Code::StaleDead | Code::NotKms => {
                out.deletes.push((urgency(f.code), change(Action::Delete, record)));
            }
            Code::StaleUnknownHost if zone.remove_unknown => {
                out.deletes.push((urgency(f.code), change(Action::Delete, record)));
            }
            Code::StaleUnknownHost => out.held.push(Held {
                record: Some(record),
                reason: "not deleted: the host is unknown to the inventory and remove_unknown = false".into(),
            }),
            Code::RecordDrift => {
                let Some(host) = inv.host(&record.target) else { continue };
                let wanted = wanted_record(inv, host);
                out.deletes.push((urgency(f.code), change(Action::Delete, record)));
                if !before.iter().any(|r| r.same_rdata(&wanted)) {
                    out.adds.push(change(Action::Add, wanted));
                }
            }
            Code::MissingRecord => out.adds.push(change(Action::Add, record)),
            _ => {}
        }
    }
    out.deletes.sort_by(|a, b| (a.0, &a.1.record).cmp(&(b.0, &b.1.record)));
    out.adds.sort_by(|a, b| a.record.cmp(&b.record));
    out.adds.dedup_by(|a, b| a.record.same_rdata(&b.record));
    out
}

/// The rails on what is asked of a zone whose RRset is `before`: what may go, in order; what
/// they hold back goes to `held`, by record, with the reason.
#[allow(clippy::too_many_arguments)]
fn rails(
    inv: &Inventory,
    obs: &Observation,
    zone: &DnsName,
    before: &[SrvRecord],
    mut deletes: Vec<Ranked>,
    adds: Vec<Change>,
    held: &mut Vec<Held>,
    max_deletes: usize,
) -> Vec<Change> {
    let mut hold = |record: SrvRecord, reason: String| held.push(Held { record: Some(record), reason });

    // Dead only when every instance that can judge agrees: another site that sees the host
    // working, or a view that could not be read, keeps its record.
    let now = crate::peers::unix_secs(obs.observed_at);
    let me = &inv.instance;
    let peers = crate::peers::Peers::of(obs.peers.get(zone), &me.id, now, me.stale_after);
    let (contradicted, rest): (Vec<Ranked>, Vec<Ranked>) = deletes
        .into_iter()
        .partition(|(_, c)| c.code == Code::StaleDead && peers.hold_delete(&c.record.target, now).is_some());
    for (_, c) in contradicted {
        let reason = peers.hold_delete(&c.record.target, now).unwrap_or_default();
        hold(c.record, reason);
    }
    deletes = rest;

    // When no target answers at all and no unpublished host does either, this host's view is
    // more likely broken (a firewall, the network) than every KMS host dead at once: deleting
    // on that evidence would empty the zone a run at a time.
    let up = |r: &SrvRecord| health(obs, &r.target, r.port) == Health::Up;
    if !before.is_empty() && !before.iter().any(up) && adds.is_empty() {
        let (spared, rest): (Vec<Ranked>, Vec<Ranked>) = deletes
            .into_iter()
            .partition(|(_, c)| matches!(c.code, Code::StaleDead | Code::NotKms | Code::StaleUnresolvable));
        for (_, c) in spared {
            let reason = "held back: no target of the zone answers as a KMS host, which looks like a problem on this side (firewall, network) rather than every host down";
            hold(c.record, reason.into());
        }
        deletes = rest;
    }

    // max_deletes counts records whose host leaves the zone; a replacement keeps its host.
    let mut kept: Vec<Change> = Vec::new();
    let mut removals = 0;
    for (_, d) in deletes {
        let replaced = adds.iter().any(|a| a.record.target == d.record.target);
        if !replaced && removals >= max_deletes {
            let reason = format!("held back: at most max_deletes = {max_deletes} records are removed per run");
            hold(d.record, reason);
            continue;
        }
        removals += usize::from(!replaced);
        kept.push(d);
    }
    kept.extend(adds);

    // Never leave a zone without a working KMS host when it had one: keep the working targets
    // that were to go (a decommissioned or unknown host that still answers).
    if before.iter().any(up) && !after(before, &kept).iter().any(up) {
        let (spared, rest): (Vec<Change>, Vec<Change>) =
            kept.into_iter().partition(|c| c.action == Action::Delete && up(&c.record));
        for c in spared {
            let reason =
                "held back: it is the zone's last target that answers as a KMS host; publish a working host first";
            hold(c.record, reason.into());
        }
        kept = rest;
    }
    kept
}

/// The last rail: a zone with `policy = "audit"` gets its plan shown, never applied.
fn hold_by_policy(p: &mut ZonePlan) {
    if p.policy == Policy::Audit && !p.changes.is_empty() {
        p.held.push(Held { record: None, reason: "shown, not applied: the zone's policy is \"audit\"".into() });
    }
}

#[cfg(test)]
mod tests;
