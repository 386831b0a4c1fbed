//! The evidence of each delete, read again just before the UPDATE goes: the target's
//! addresses over TCP, (one-shot runs) further probes of a host called dead, and (for a
//! dead host) the other instances' shared view over TCP.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::inventory::Inventory;
use crate::model::{Observation, ProbeState, Resolution};
use crate::name::DnsName;
use crate::observe::{self};
use crate::plan::ZonePlan;

/// The evidence behind the deletes of one run, read again: each target's addresses over TCP,
/// and each endpoint's confirming probes, each made once however many zones publish it.
pub struct Confirmations<'a> {
    /// The daemon's run: its hysteresis verdicts already span time, so one probe just before
    /// the delete is enough (a host that came back since the verdict keeps its record); a
    /// one-shot run probes `confirm_probes` times over `confirm_window`.
    daemon: bool,
    endpoints: std::sync::Mutex<std::collections::HashMap<SocketAddr, Arc<tokio::sync::OnceCell<Confirmation>>>>,
    names: std::sync::Mutex<std::collections::HashMap<DnsName, Arc<tokio::sync::OnceCell<Resolution>>>>,
    over_tcp: tokio::sync::OnceCell<observe::AddressLookup<'a>>,
    /// Every re-read of the run, over TCP: one connection per server, not one per zone.
    tcp: observe::DnsReader,
}

/// What the probes made just before a delete found at one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    /// Every probe failed: the last one's answer.
    Failed { probes: u32, last: ProbeState },
    /// A probe was answered as a KMS host.
    Answered { after: u32 },
}

impl<'a> Confirmations<'a> {
    /// The confirmations of one run; `daemon` when the daemon's verdicts steer it.
    pub fn new(inv: &Inventory, daemon: bool) -> Confirmations<'a> {
        let tcp = observe::DnsReader::tcp_only(inv.defaults.timeout, inv.defaults.retries);
        Confirmations {
            daemon,
            endpoints: Default::default(),
            names: Default::default(),
            over_tcp: Default::default(),
            tcp,
        }
    }

    async fn of(&self, inv: &Inventory, endpoint: SocketAddr) -> Confirmation {
        let cell = {
            let mut map = self.endpoints.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(endpoint).or_default().clone()
        };
        cell.get_or_init(|| confirm(inv, endpoint, self.daemon)).await.clone()
    }

    /// `name`'s addresses read again, every question over TCP.
    async fn reread(&self, inv: &'a Inventory, name: &DnsName) -> Resolution {
        let cell = {
            let mut map = self.names.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(name.clone()).or_default().clone()
        };
        cell.get_or_init(|| async {
            let lookup = self.over_tcp.get_or_init(|| observe::AddressLookup::over_tcp(inv, self.tcp.clone())).await;
            lookup.addresses(name).await
        })
        .await
        .clone()
    }
}

/// Whether a re-read says what the observation said: the same addresses, or "no address" both
/// times. Anything else, a failed re-read included, means the evidence did not hold.
pub(super) fn same_resolution(then: Option<&Resolution>, now: &Resolution) -> bool {
    match (then, now) {
        (
            Some(Resolution::Addresses { addresses: a, .. }),
            Resolution::Addresses { addresses: b, incomplete: None },
        ) => a == b,
        (Some(Resolution::NoAddress), Resolution::NoAddress) => true,
        _ => false,
    }
}

pub(super) fn describe_resolution(r: Option<&Resolution>) -> String {
    match r {
        Some(Resolution::Addresses { addresses, .. }) => {
            addresses.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        }
        Some(Resolution::NoAddress) => "no address".into(),
        Some(Resolution::Failed { error }) => format!("unknown ({error})"),
        None => "not looked up".into(),
    }
}

/// `confirm_probes` probes of `endpoint` spread over `confirm_window`; the first that answers
/// as KMS ends it.
pub(super) async fn confirm(inv: &Inventory, endpoint: SocketAddr, once: bool) -> Confirmation {
    let n = if once { 1 } else { inv.defaults.confirm_probes.max(1) };
    let gap = inv.defaults.confirm_window / n.saturating_sub(1).max(1);
    let mut last = ProbeState::Down("not probed".into());
    for i in 1..=n {
        last = observe::probe::probe(endpoint, inv.defaults.timeout, 0).await;
        if last == ProbeState::KmsUp {
            return Confirmation::Answered { after: i };
        }
        if i < n {
            tokio::time::sleep(gap).await;
        }
    }
    Confirmation::Failed { probes: n, last }
}

/// Reads again, just before the UPDATE, the evidence each delete on DNS or liveness rests on,
/// and holds back every delete whose evidence does not hold:
/// - the target's addresses (`stale-unresolvable`: none; `stale-dead`/`not-kms`: the ones
///   probed), read over TCP, which an off-path attacker cannot forge by guessing an ID;
/// - for `stale-dead`/`not-kms`: every address probed again, `confirm_probes` times over
///   `confirm_window` (the daemon: once, its verdicts already span time); one KMS answer
///   keeps the record. A verdict is older than the moment of the delete: a host that came
///   back since (another instance may have published it again) must not be removed.
///
/// The evidence of each delete that stays is written into its reason. Keeping a record can
/// break no rail: it only leaves more of the zone as it was.
pub(super) async fn confirm_deletes<'a>(
    inv: &'a Inventory,
    obs: &Observation,
    zp: &mut ZonePlan,
    confirmations: &Confirmations<'a>,
) {
    use crate::audit::Code;
    use crate::plan::{Action, Held};
    let over = match confirmations.daemon {
        true => String::new(),
        false => format!(" over {}", humantime::format_duration(inv.defaults.confirm_window)),
    };
    let on_evidence = |c: &crate::plan::Change| {
        c.action == Action::Delete && matches!(c.code, Code::StaleDead | Code::NotKms | Code::StaleUnresolvable)
    };
    // Every delete's evidence is gathered at once, each target read again and each endpoint
    // probed concurrently, so that a zone with two dead hosts waits one confirmation window,
    // not two; the loop below finds each result made (they are kept per run).
    let gather = zp.changes.iter().filter(|c| on_evidence(c)).map(|c| async move {
        let now = confirmations.reread(inv, &c.record.target).await;
        if let Resolution::Addresses { addresses, .. } = &now
            && c.code != Code::StaleUnresolvable
            && same_resolution(obs.names.get(&c.record.target), &now)
        {
            let probes = addresses.iter().map(|a| confirmations.of(inv, SocketAddr::new(*a, c.record.port)));
            futures_util::future::join_all(probes).await;
        }
    });
    futures_util::future::join_all(gather).await;
    let mut kept = Vec::new();
    for mut change in std::mem::take(&mut zp.changes) {
        if !on_evidence(&change) {
            kept.push(change);
            continue;
        }
        let target = change.record.target.clone();
        let then = obs.names.get(&target);
        let now = confirmations.reread(inv, &target).await;
        if !same_resolution(then, &now) {
            zp.held.push(Held {
                record: Some(change.record),
                reason: format!(
                    "kept: read again over TCP just before the delete, {target} has {}, not the {} the delete rested on",
                    describe_resolution(Some(&now)),
                    describe_resolution(then)
                ),
            });
            continue;
        }
        let addresses = match &now {
            Resolution::Addresses { addresses, .. } if change.code != Code::StaleUnresolvable => addresses.clone(),
            _ => {
                change.reason = format!("{} (confirmed over TCP: {})", change.reason, describe_resolution(Some(&now)));
                kept.push(change);
                continue;
            }
        };
        let mut answered = None;
        let mut evidence = Vec::new();
        for a in addresses {
            let ep = SocketAddr::new(a, change.record.port);
            match confirmations.of(inv, ep).await {
                Confirmation::Answered { after } => answered = Some((ep, after)),
                Confirmation::Failed { probes, last } => {
                    evidence.push(format!("{ep}: {probes} of {probes} probes{over} failed, the last {}", last.code()))
                }
            }
        }
        match answered {
            Some((ep, after)) => zp.held.push(Held {
                record: Some(change.record),
                reason: format!(
                    "kept: {ep} answered as a KMS host on confirming probe {after}, so one failed probe is not a dead host (a KMS service restarting?)"
                ),
            }),
            None => {
                change.reason = format!("{} (confirmed: {})", change.reason, evidence.join("; "));
                kept.push(change);
            }
        }
    }
    zp.changes = kept;
    confirm_peers(inv, zp, &confirmations.tcp).await;
}

/// A delete for a dead host rests on the other instances' silence too ([`crate::peers`]): the
/// zone's shared view is read again over TCP (an answer over UDP can be forged off-path, and
/// this is the last moment another site can say "alive"), and a delete a fresh entry now
/// contradicts, or that the view can no longer vouch for, is kept.
async fn confirm_peers(inv: &Inventory, zp: &mut ZonePlan, reader: &observe::DnsReader) {
    use crate::audit::Code;
    use crate::plan::{Action, Held};
    let dead = |c: &crate::plan::Change| c.action == Action::Delete && c.code == Code::StaleDead;
    if !zp.changes.iter().any(dead) {
        return;
    }
    let Some(zone) = inv.zone(&zp.zone) else { return };
    let mut servers = Vec::with_capacity(zone.servers.len());
    for s in &zone.servers {
        let addr = observe::dns::server_socket_addrs(s, inv.defaults.timeout).await.and_then(|a| {
            a.first()
                .copied()
                .ok_or_else(|| crate::model::ReadError::Network(format!("the server name of {s} has no address")))
        });
        servers.push(addr);
    }
    let view = observe::peers::read_view(reader, &servers, &zone.name).await;
    let now = crate::peers::unix_secs(Some(std::time::SystemTime::now()));
    let me = &inv.instance;
    let peers = crate::peers::Peers::of(Some(&view), &me.id, now, me.stale_after);
    let (held, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut zp.changes)
        .into_iter()
        .partition(|c| dead(c) && peers.hold_delete(&c.record.target, now).is_some());
    for c in held {
        let why = peers.hold_delete(&c.record.target, now).unwrap_or_default();
        zp.held.push(Held {
            record: Some(c.record),
            reason: format!("kept: the shared view read again over TCP just before the delete: {why}"),
        });
    }
    zp.changes = kept;
}
