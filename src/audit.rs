//! The audit: (inventory, observation) → findings. Pure: no I/O, no clock.
//!
//! Rules that keep it honest:
//! - A server that could not be read gives `server-unreachable` and nothing else: its records
//!   are unknown, so no record on it is called stale and none is called missing.
//! - A target whose addresses could not be looked up is unknown too: no liveness verdict.
//! - Names compare case-insensitively and without the trailing dot ([`DnsName`]).
//! - Each SRV record gets at most one verdict, the most serious that applies.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::inventory::{HostState, Inventory, KmsHost};
use crate::model::{Observation, ProbeState, Resolution, ServerView, SrvRecord, ZoneView};
use crate::name::DnsName;

/// How urgent a finding is; the order is that of the exit codes (info < warning < critical).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// The finding codes. They are a contract: monitoring and scripts match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Code {
    ServerUnreachable,
    ServerDivergence,
    NoHealthyHost,
    StaleDecommissioned,
    StaleUnresolvable,
    StaleDead,
    NotKms,
    StaleUnknownHost,
    MissingRecord,
    ActiveHostDown,
    RecordDrift,
    UpdateBlockedAcl,
    UpdateAclUnknown,
    TombstonedOwner,
    StaticRecord,
    AgingStale,
    ZoneSecureOnly,
    ZoneUpdatesDisabled,
    AdDnsDivergence,
    AdUnreachable,
    AdUnreadable,
    TtlAboveFailover,
    SplitView,
    PeerStale,
    PeerViewUnreadable,
}

impl Code {
    pub fn severity(self) -> Severity {
        match self {
            Code::StaleUnknownHost
            | Code::RecordDrift
            | Code::ServerDivergence
            | Code::TombstonedOwner
            | Code::StaticRecord
            | Code::AgingStale
            | Code::AdDnsDivergence
            | Code::ActiveHostDown
            | Code::UpdateAclUnknown
            | Code::AdUnreadable
            | Code::SplitView
            | Code::PeerStale
            | Code::PeerViewUnreadable => Severity::Warning,
            Code::ZoneSecureOnly | Code::TtlAboveFailover => Severity::Info,
            _ => Severity::Critical,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Code::ServerUnreachable => "server-unreachable",
            Code::ServerDivergence => "server-divergence",
            Code::NoHealthyHost => "no-healthy-host",
            Code::StaleDecommissioned => "stale-decommissioned",
            Code::StaleUnresolvable => "stale-unresolvable",
            Code::StaleDead => "stale-dead",
            Code::NotKms => "not-kms",
            Code::StaleUnknownHost => "stale-unknown-host",
            Code::MissingRecord => "missing-record",
            Code::ActiveHostDown => "active-host-down",
            Code::RecordDrift => "record-drift",
            Code::UpdateBlockedAcl => "update-blocked-acl",
            Code::UpdateAclUnknown => "update-acl-unknown",
            Code::TombstonedOwner => "tombstoned-owner",
            Code::StaticRecord => "static-record",
            Code::AgingStale => "aging-stale",
            Code::ZoneSecureOnly => "zone-secure-only",
            Code::ZoneUpdatesDisabled => "zone-updates-disabled",
            Code::AdDnsDivergence => "ad-dns-divergence",
            Code::AdUnreachable => "ad-unreachable",
            Code::AdUnreadable => "ad-unreadable",
            Code::TtlAboveFailover => "ttl-above-failover",
            Code::SplitView => "split-view",
            Code::PeerStale => "peer-stale",
            Code::PeerViewUnreadable => "peer-view-unreadable",
        }
    }
}

/// One thing wrong, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub code: Code,
    pub severity: Severity,
    pub zone: DnsName,
    /// The one server concerned; absent when it holds for every server that could be read.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub server: Option<String>,
    /// The SRV record concerned (present or, for `missing-record`, wanted).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub record: Option<SrvRecord>,
    /// The target host concerned.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub target: Option<DnsName>,
    pub message: String,
    pub fix: String,
}

/// An SRV record as clients use it: target, port, priority, weight (the TTL does not count).
type RdataKey<'a> = (&'a DnsName, u16, u16, u16);

/// How a target answered as a KMS host, over all its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// At least one address accepted the KMS bind.
    Up,
    /// No address is a KMS host, and at least one answered as something else.
    NotKms(String),
    /// Every address is down.
    Down(String),
    /// The name has no A or AAAA.
    NoAddress,
    /// The lookup or the probes could not be done: no verdict.
    Unknown(String),
}

/// The health of `name` on `port` as the observation recorded it.
pub fn health(obs: &Observation, name: &DnsName, port: u16) -> Health {
    let addresses = match obs.names.get(name) {
        None => return Health::Unknown("its addresses were not looked up".into()),
        Some(Resolution::Failed { error }) => {
            return Health::Unknown(format!("its address lookup failed: {error}"));
        }
        Some(Resolution::NoAddress) => return Health::NoAddress,
        Some(Resolution::Addresses { addresses, incomplete }) => match incomplete {
            None => addresses,
            // Addresses a server could not tell us may be the live ones: only "up" can be said.
            Some(error) => {
                let up =
                    addresses.iter().any(|a| obs.probes.get(&SocketAddr::new(*a, port)) == Some(&ProbeState::KmsUp));
                return if up {
                    Health::Up
                } else {
                    Health::Unknown(format!("a server of its zone could not be read for its addresses: {error}"))
                };
            }
        },
    };
    let states: Vec<(SocketAddr, Option<&ProbeState>)> = addresses
        .iter()
        .map(|a| {
            let ep = SocketAddr::new(*a, port);
            (ep, obs.probes.get(&ep))
        })
        .collect();
    if states.iter().any(|(_, s)| s == &Some(&ProbeState::KmsUp)) {
        return Health::Up;
    }
    if let Some((ep, Some(ProbeState::NotKms(why)))) =
        states.iter().find(|(_, s)| matches!(s, Some(ProbeState::NotKms(_))))
    {
        return Health::NotKms(format!("{ep}: {why}"));
    }
    if let Some((ep, _)) = states.iter().find(|(_, s)| s.is_none()) {
        return Health::Unknown(format!("{ep} was not probed"));
    }
    let why: Vec<String> = states
        .iter()
        .filter_map(|(ep, s)| match s {
            Some(ProbeState::Down(why)) => Some(format!("{ep}: {why}")),
            _ => None,
        })
        .collect();
    Health::Down(why.join("; "))
}

/// Judges every zone of the inventory against what was observed.
pub fn audit(inv: &Inventory, obs: &Observation) -> Vec<Finding> {
    // Indexed once, so that each zone costs the same with 10 zones or 10,000: the active
    // hosts that publish in each zone (in inventory order), and each zone's place.
    let mut active_in: HashMap<&DnsName, Vec<&KmsHost>> = HashMap::new();
    for h in inv.hosts.iter().filter(|h| h.state == HostState::Active) {
        for z in &h.zones {
            let hosts = active_in.entry(z).or_default();
            if hosts.last().is_none_or(|last| !std::ptr::eq(*last, h)) {
                hosts.push(h);
            }
        }
    }
    let mut findings = Vec::new();
    for view in &obs.zones {
        let active = active_in.get(&view.zone).map_or(&[][..], Vec::as_slice);
        audit_zone(inv, obs, view, active, &mut findings);
    }
    if let Some(ad) = &obs.ad {
        findings.extend(ad::audit_ad(inv, ad, &obs.zones, obs.observed_at));
    }
    findings.extend(peers::audit_peers(inv, obs));
    let mut place: HashMap<&DnsName, usize> = HashMap::with_capacity(inv.zones.len());
    for (i, z) in inv.zones.iter().enumerate() {
        place.entry(&z.name).or_insert(i);
    }
    let zone_order = |z: &DnsName| place.get(z).copied().unwrap_or(usize::MAX);
    findings.sort_by(|a, b| {
        (zone_order(&a.zone), std::cmp::Reverse(a.severity), a.code, &a.target, &a.server).cmp(&(
            zone_order(&b.zone),
            std::cmp::Reverse(b.severity),
            b.code,
            &b.target,
            &b.server,
        ))
    });
    findings
}

/// Judges one zone; `active` are the inventory's active hosts that publish in it.
fn audit_zone(inv: &Inventory, obs: &Observation, view: &ZoneView, active: &[&KmsHost], out: &mut Vec<Finding>) {
    let zone = &view.zone;
    let finding =
        |code: Code, server: Option<String>, record: Option<SrvRecord>, message: String, fix: String| Finding {
            code,
            severity: code.severity(),
            zone: zone.clone(),
            server,
            target: record.as_ref().map(|r| r.target.clone()),
            record,
            message,
            fix,
        };

    let mut readable: Vec<(&ServerView, &[SrvRecord])> = Vec::new();
    for s in &view.servers {
        match s.srv.known_records() {
            Some(records) => readable.push((s, records)),
            None => {
                let why = match &s.srv {
                    crate::model::SrvAnswer::Failed { error } => error.to_string(),
                    _ => String::new(),
                };
                out.push(finding(
                    Code::ServerUnreachable,
                    Some(s.server.to_string()),
                    None,
                    format!(
                        "{} could not be read: {why}; its records are unknown, so no verdict is given for them",
                        s.server
                    ),
                    format!("check that {} is up, reachable from this host, and authoritative for {zone}", s.server),
                ));
            }
        }
    }
    if readable.is_empty() {
        return;
    }

    if let Some(f) = divergence(zone, &readable) {
        out.push(finding(Code::ServerDivergence, None, None, f.0, f.1));
    }

    // Every distinct record (by rdata), with the servers that serve it.
    let mut records: BTreeMap<RdataKey, (&SrvRecord, Vec<&crate::inventory::ServerAddr>)> = BTreeMap::new();
    for (s, rs) in &readable {
        for r in rs.iter() {
            records
                .entry((&r.target, r.port, r.priority, r.weight))
                .or_insert_with(|| (r, Vec::new()))
                .1
                .push(&s.server);
        }
    }
    // The servers' names are written out only for a finding: most records have none.
    let per_server = |on: &[&crate::inventory::ServerAddr]| -> Vec<Option<String>> {
        if on.len() == readable.len() { vec![None] } else { on.iter().map(|s| Some(s.to_string())).collect() }
    };

    for (record, on) in records.values() {
        if let Some((code, message, fix)) = record_verdict(inv, obs, zone, record) {
            for server in per_server(on) {
                out.push(finding(code, server, Some((*record).clone()), message.clone(), fix.clone()));
            }
        }
    }

    for &host in active {
        let why = match health(obs, &host.name, host.port) {
            Health::Up => None,
            Health::Down(why) | Health::NotKms(why) => Some(why),
            Health::NoAddress => Some("it has no A or AAAA record".into()),
            Health::Unknown(_) => continue,
        };
        if let Some(why) = why {
            // Published, its record gets its own verdict (stale-dead, not-kms...); unpublished,
            // nothing else would say that the estate has lost an active KMS host.
            if !readable.iter().any(|(_, rs)| rs.iter().any(|r| r.target == host.name)) {
                out.push(Finding {
                    target: Some(host.name.clone()),
                    ..finding(
                        Code::ActiveHostDown,
                        None,
                        None,
                        format!(
                            "{} is an active KMS host of {zone} in the inventory, but it does not answer as one ({why}) and is not published",
                            host.name
                        ),
                        format!(
                            "bring the KMS service on {} back (kmsdns repair then publishes it), or mark it standby or decommissioned in the inventory",
                            host.name
                        ),
                    )
                });
            }
            continue;
        }
        let lacking: Vec<String> = readable
            .iter()
            .filter(|(_, rs)| !rs.iter().any(|r| r.target == host.name))
            .map(|(s, _)| s.server.to_string())
            .collect();
        if lacking.is_empty() {
            continue;
        }
        let wanted = wanted_record(inv, host);
        let servers =
            if lacking.len() == readable.len() { vec![None] } else { lacking.into_iter().map(Some).collect() };
        for server in servers {
            let whereabouts = server.as_ref().map(|s| format!(" on {s}")).unwrap_or_default();
            out.push(finding(
                Code::MissingRecord,
                server,
                Some(wanted.clone()),
                format!(
                    "{} answers as a KMS host but is not published in {zone}{whereabouts}; clients there cannot find it",
                    host.name
                ),
                format!(
                    "add `_vlmcs._tcp.{zone}. {} IN {wanted}` (kmsdns repair), or check why the host's own registration fails (DisableDnsPublishing, DnsDomainPublishList, event 12293)",
                    wanted.ttl
                ),
            ));
        }
    }

    let targets: Vec<&SrvRecord> = records.values().map(|(r, _)| *r).collect();
    let healths: Vec<Health> = targets.iter().map(|r| health(obs, &r.target, r.port)).collect();
    // A zone with no record that no active host should publish in holds no KMS service to miss.
    let expects_kms = !targets.is_empty() || !active.is_empty();
    if expects_kms && !healths.contains(&Health::Up) && !healths.iter().any(|h| matches!(h, Health::Unknown(_))) {
        let message = if targets.is_empty() {
            format!("_vlmcs._tcp.{zone} has no SRV record; clients there cannot find a KMS host")
        } else {
            format!(
                "none of the {} SRV targets of _vlmcs._tcp.{zone} answers as a KMS host; clients there cannot activate",
                targets.len()
            )
        };
        out.push(finding(
            Code::NoHealthyHost,
            None,
            None,
            message,
            "bring a KMS host up (or publish a working one) before removing anything: `slmgr /dlv` on a host shows its state".into(),
        ));
    }
}

/// A TTL is "far above" the daemon's failover bound past this many bounds.
pub const TTL_BOUNDS: u64 = 10;

/// `ttl-above-failover` for each zone `kmsdns run` repairs (policy = "repair") whose SRV TTL,
/// as served or as kmsdns writes it, is more than [`TTL_BOUNDS`] times the failover bound
/// (`fail_after × probe_interval`): a caching resolver keeps handing out a removed host for
/// that long. Only the daemon asks for it, since the bound is the daemon's.
pub fn ttl_findings(inv: &Inventory, obs: &Observation) -> Vec<Finding> {
    let bound = inv.daemon.probe_interval.saturating_mul(inv.daemon.fail_after).as_secs().max(1);
    let limit = bound.saturating_mul(TTL_BOUNDS);
    let mut out = Vec::new();
    for view in &obs.zones {
        if inv.zone(&view.zone).is_none_or(|z| z.policy != crate::inventory::Policy::Repair) {
            continue;
        }
        let served = view.servers.iter().filter_map(|s| s.srv.known_records()).flatten().map(|r| r.ttl).max();
        let worst = served.unwrap_or(0).max(inv.defaults.ttl);
        if u64::from(worst) <= limit {
            continue;
        }
        let served = served.map(|t| format!("served with TTL {t} s, ")).unwrap_or_default();
        out.push(Finding {
            code: Code::TtlAboveFailover,
            severity: Code::TtlAboveFailover.severity(),
            zone: view.zone.clone(),
            server: None,
            record: None,
            target: None,
            message: format!(
                "_vlmcs._tcp.{} is {served}and kmsdns writes TTL {} s, but the daemon removes a dead host within {bound} s: after a repair or failover, caching resolvers keep handing out the dead host for up to {worst} s",
                view.zone, inv.defaults.ttl
            ),
            fix: format!(
                "set [defaults] ttl to {limit} s or less (300 is a common choice); records already published keep their TTL until they are rewritten"
            ),
        });
    }
    out
}

/// The SRV record an inventory host should have.
pub fn wanted_record(inv: &Inventory, host: &KmsHost) -> SrvRecord {
    SrvRecord {
        target: host.name.clone(),
        port: host.port,
        priority: host.priority,
        weight: host.weight,
        ttl: inv.defaults.ttl,
    }
}

fn record_verdict(inv: &Inventory, obs: &Observation, zone: &DnsName, r: &SrvRecord) -> Option<(Code, String, String)> {
    let host = inv.host(&r.target);
    // Made only for a verdict: most records have none, and a format for each was a quarter
    // of a large audit's judging (callgrind).
    let remove = || format!("delete `_vlmcs._tcp.{zone}. IN {r}` (kmsdns repair)");
    if let Some(h) = host.filter(|h| h.state == HostState::Decommissioned) {
        return Some((
            Code::StaleDecommissioned,
            format!("{r} points at {}, which the inventory says is decommissioned", h.name),
            format!("{}; if the host still runs the KMS service, stop it publishing (`slmgr /cdns`) first", remove()),
        ));
    }
    // A known host that answers on its inventory port but is published with other values:
    // the record drifted, the host is fine.
    if let Some(h) = host {
        let drifted = (r.port, r.priority, r.weight) != (h.port, h.priority, h.weight);
        if drifted && health(obs, &h.name, h.port) == Health::Up {
            let want = wanted_record(inv, h);
            return Some((
                Code::RecordDrift,
                format!("{r} differs from the inventory, which wants {want}"),
                format!(
                    "replace it with `{want}` (kmsdns repair), or correct the inventory if the host was moved on purpose"
                ),
            ));
        }
    }
    match health(obs, &r.target, r.port) {
        Health::NoAddress => {
            return Some((
                Code::StaleUnresolvable,
                format!("{r} points at {}, which has no A or AAAA record", r.target),
                format!("{}, or restore the host's address record if it still exists", remove()),
            ));
        }
        Health::Down(why) => {
            return Some((
                Code::StaleDead,
                format!(
                    "{r} points at a host that does not answer on port {} ({why}); clients get RPC error 0x800706BA",
                    r.port
                ),
                format!("{}, or bring the KMS service on {} back", remove(), r.target),
            ));
        }
        Health::NotKms(why) => {
            return Some((
                Code::NotKms,
                format!("{r} points at a port that answers, but not as a KMS host ({why})"),
                format!("{}, or check which service listens on {}:{}", remove(), r.target, r.port),
            ));
        }
        Health::Up | Health::Unknown(_) => {}
    }
    if host.is_none() {
        return Some((
            Code::StaleUnknownHost,
            format!(
                "{r} points at {}, which the inventory does not know (a KMS host key on an ordinary machine?)",
                r.target
            ),
            format!(
                "if it is a KMS host of yours, add it to the inventory; if not, uninstall its KMS host key (`slmgr /upk`, then `slmgr /ipk` with a client key) and {}",
                remove()
            ),
        ));
    }
    None
}

/// The zone's servers disagree about the RRset or the SOA serial: a message and a fix.
fn divergence(zone: &DnsName, readable: &[(&ServerView, &[SrvRecord])]) -> Option<(String, String)> {
    fn rdata(rs: &[SrvRecord]) -> Vec<RdataKey<'_>> {
        let mut v: Vec<_> = rs.iter().map(|r| (&r.target, r.port, r.priority, r.weight)).collect();
        v.sort();
        v.dedup();
        v
    }
    let first = rdata(readable[0].1);
    let records_differ = readable.iter().any(|(_, rs)| rdata(rs) != first);
    let serials: Vec<(&crate::inventory::ServerAddr, u32)> =
        readable.iter().filter_map(|(s, _)| s.serial.as_ref().ok().map(|n| (&s.server, *n))).collect();
    let serials_differ = serials.windows(2).any(|w| w[0].1 != w[1].1);
    if !records_differ && !serials_differ {
        return None;
    }
    let mut parts = Vec::new();
    if records_differ {
        let views: Vec<String> = readable
            .iter()
            .map(|(s, rs)| {
                let targets: Vec<String> = rs.iter().map(|r| r.target.to_string()).collect();
                format!("{} has [{}]", s.server, targets.join(", "))
            })
            .collect();
        parts.push(format!("the servers answer _vlmcs._tcp.{zone} differently: {}", views.join("; ")));
    }
    if serials_differ {
        let views: Vec<String> = serials.iter().map(|(s, n)| format!("{s} serial {n}")).collect();
        parts.push(format!("SOA serials differ: {}", views.join(", ")));
    }
    Some((
        parts.join("; "),
        "check zone transfers (NOTIFY, IXFR/AXFR) or AD replication between the servers; a difference that lasts longer than the zone's refresh interval is not propagation delay".into(),
    ))
}

pub mod access;
pub mod ad;
pub mod peers;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod ttl_tests {
    use super::*;
    use crate::testkit::World;

    const REPAIR: &str = "policy = \"repair\"\nallow_unsigned = true";

    #[test]
    fn a_repaired_zone_served_for_an_hour_is_told_that_failover_waits_for_caches() {
        // Defaults: the daemon drops a dead host within 3 × 10 s; the records say 3600 s.
        let w = World::with_zone_settings(REPAIR, &["kms1.corp.test"]);
        let found = ttl_findings(&w.inv, &w.obs);
        assert_eq!(found.len(), 1, "{found:?}");
        let f = &found[0];
        assert_eq!((f.code.as_str(), f.severity), ("ttl-above-failover", Severity::Info));
        assert!(f.message.contains("served with TTL 3600 s") && f.message.contains("within 30 s"), "{}", f.message);
        assert!(f.fix.contains("set [defaults] ttl to 300 s or less"), "{}", f.fix);
    }

    #[test]
    fn short_ttls_and_zones_the_daemon_only_audits_say_nothing() {
        let mut w = World::with_zone_settings(REPAIR, &["kms1.corp.test"]);
        w.inv.defaults.ttl = 300;
        for s in &mut w.obs.zones[0].servers {
            if let crate::model::SrvAnswer::Records { records } = &mut s.srv {
                records.iter_mut().for_each(|r| r.ttl = 300);
            }
        }
        assert_eq!(ttl_findings(&w.inv, &w.obs), vec![]);
        // A TTL kmsdns would write is enough to say it, even before any record is served.
        w.inv.defaults.ttl = 301;
        assert_eq!(ttl_findings(&w.inv, &w.obs).len(), 1);
        let audit_only = World::new(&["kms1.corp.test"]);
        assert_eq!(ttl_findings(&audit_only.inv, &audit_only.obs), vec![]);
    }
}
