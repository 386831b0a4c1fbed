//! Repair: the plan carried out, one prerequisite-guarded UPDATE per zone, then checked on
//! every server of the zone.
//!
//! When the prerequisite fails (someone changed the RRset since it was observed), the zone is
//! observed and planned again and the update retried, at most twice; a plan that comes out
//! empty means the other writer already did the work. What another writer did is never
//! overwritten: each retry asserts the RRset as it is now.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::apply::{self, Authority, CommitError, Committed, Mode, RrsetUpdate};
use crate::audit::audit;
use crate::inventory::{HostState, Inventory, ServerAddr, ServerHost, Zone};
use crate::keys::TsigKey;
use crate::name::DnsName;
use crate::observe::{self, DnsReader, Observation, ProbeState, Resolution, SrvAnswer, SrvRecord, same_rrset};
use crate::plan::{Plan, ZonePlan};

/// Prerequisite conflicts retried before giving up.
pub const CONFLICT_RETRIES: usize = 2;

/// What became of one zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneOutcome {
    pub zone: DnsName,
    /// The plan that was carried out (after any re-planning).
    pub plan: ZonePlan,
    pub result: ZoneResult,
    /// What each server answered after the change, when it was checked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<ServerCheck>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum ZoneResult {
    /// The zone needs no change.
    NothingToDo,
    /// Changes are planned but not sent: the policy is "audit", or a rail held them all.
    NotApplied,
    /// A dry run: the UPDATE would be sent.
    WouldApply,
    /// Applied (journal entry `id`); `lagging` lists servers that did not serve the new
    /// RRset before the propagation timeout.
    Applied {
        id: u64,
        attempts: usize,
        lagging: Vec<String>,
    },
    /// After a conflict, the zone was found to need nothing more.
    SettledByOther {
        attempts: usize,
    },
    /// The prerequisite failed on every attempt.
    Conflict {
        attempts: usize,
        error: String,
    },
    Failed {
        error: String,
    },
}

impl ZoneResult {
    /// Severity for the exit code: 0 fine, 1 something held back, 2 failed.
    pub fn severity(&self, plan: &ZonePlan) -> u8 {
        match self {
            ZoneResult::NothingToDo | ZoneResult::WouldApply | ZoneResult::SettledByOther { .. } => {
                u8::from(!plan.held.is_empty())
            }
            ZoneResult::NotApplied => 1,
            ZoneResult::Applied { lagging, .. } if !lagging.is_empty() => 2,
            ZoneResult::Applied { .. } => u8::from(!plan.held.is_empty()),
            ZoneResult::Conflict { .. } | ZoneResult::Failed { .. } => 2,
        }
    }
}

/// One server's answer after a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerCheck {
    pub server: String,
    /// The change is visible there: what it removed is gone, what it added is served.
    pub converged: bool,
    /// Visible, in an RRset that another writer has changed further since.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub moved_on: bool,
    pub answer: String,
}

/// Carries out `plan` zone by zone, concurrently under the inventory's bound.
pub async fn carry_out(inv: &Inventory, obs: &Observation, plan: Plan, mode: Mode<'_>) -> Vec<ZoneOutcome> {
    let never = AtomicBool::new(false);
    carry_out_with(inv, obs, plan, mode, &Daemon { halt: &never, health: None, replan: true }).await
}

/// Carries out a reviewed plan (`kmsdns apply`). The plan is not trusted as written: each
/// zone is checked again against `obs` (the observation of now) with every rail of the
/// planner ([`crate::plan::recheck`]), and only what the planner would still do now is sent.
/// On a conflict the zone is reported, never planned again, since a new plan is one nobody
/// reviewed.
pub async fn carry_out_reviewed(inv: &Inventory, obs: &Observation, plan: Plan, mode: Mode<'_>) -> Vec<ZoneOutcome> {
    let findings = audit(inv, obs);
    let plan = crate::plan::recheck(inv, obs, &findings, &plan.zones);
    let never = AtomicBool::new(false);
    carry_out_with(inv, obs, plan, mode, &Daemon { halt: &never, health: None, replan: false }).await
}

/// How the daemon steers a repair: once `halt` is set no further update is started (an update
/// already sent is finished and journaled), and `health`, when given, replaces single probes
/// with the hysteresis verdicts whenever a zone is observed again after a conflict.
pub struct Daemon<'a> {
    pub halt: &'a AtomicBool,
    pub health: Option<&'a crate::daemon::health::Hysteresis>,
    /// Observe and plan a zone again after a prerequisite conflict.
    pub replan: bool,
}

/// [`carry_out`] under the daemon's steering.
pub async fn carry_out_with(
    inv: &Inventory,
    obs: &Observation,
    plan: Plan,
    mode: Mode<'_>,
    steer: &Daemon<'_>,
) -> Vec<ZoneOutcome> {
    if let Mode::Apply(journal) = mode {
        // Changes whose answer nobody saw: what the servers serve now tells.
        match journal.settle_unknown(obs) {
            Ok(settled) => {
                for s in settled {
                    tracing::info!(
                        "journal entry {} (zone {}): its outcome was unknown; the servers show it {}",
                        s.id,
                        s.zone,
                        s.result.as_str()
                    );
                }
            }
            Err(e) => tracing::warn!("could not settle the journal's unknown outcomes: {e}"),
        }
    }
    let limit = Arc::new(Semaphore::new(inv.defaults.concurrency));
    let confirmations = Confirmations::default();
    let confirmations = &confirmations;
    let jobs = plan.zones.into_iter().map(|zp| {
        let limit = limit.clone();
        async move {
            let _permit = limit.acquire().await;
            repair_zone(inv, obs, zp, mode, steer, confirmations).await
        }
    });
    futures_util::future::join_all(jobs).await
}

/// Updates in flight to one primary at most, whatever the concurrency: bench/README.md found
/// BIND answering 250-330 updates a second however many wait, and dropping them past its
/// update-quota.
const UPDATES_PER_PRIMARY: usize = 16;

fn update_slot(primary: SocketAddr) -> Arc<Semaphore> {
    static SLOTS: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<SocketAddr, Arc<Semaphore>>>> =
        std::sync::OnceLock::new();
    let slots = SLOTS.get_or_init(Default::default);
    let mut map = slots.lock().unwrap_or_else(|e| e.into_inner());
    map.entry(primary).or_insert_with(|| Arc::new(Semaphore::new(UPDATES_PER_PRIMARY))).clone()
}

async fn repair_zone(
    inv: &Inventory,
    obs: &Observation,
    mut zp: ZonePlan,
    mode: Mode<'_>,
    steer: &Daemon<'_>,
    confirmations: &Confirmations,
) -> ZoneOutcome {
    let outcome = |zp: ZonePlan, result, servers| ZoneOutcome { zone: zp.zone.clone(), plan: zp, result, servers };
    let Some(zone) = inv.zone(&zp.zone).cloned() else {
        let error = "the zone is not in the inventory".to_string();
        return outcome(zp, ZoneResult::Failed { error }, vec![]);
    };
    // The inventory's word on the policy, not the plan's: a plan file may be older.
    zp.policy = zone.policy;
    if zp.changes.is_empty() {
        return outcome(zp, ZoneResult::NothingToDo, vec![]);
    }
    if !zp.will_apply() {
        return outcome(zp, ZoneResult::NotApplied, vec![]);
    }
    // The evidence a delete rests on is read again just before it is sent (see
    // confirm_deletes); a one-shot run also probes again, the daemon's verdicts already span time.
    confirm_deletes(inv, obs, &mut zp, confirmations, steer.health.is_none()).await;
    if zp.changes.is_empty() {
        return outcome(zp, ZoneResult::NotApplied, vec![]);
    }
    let auth = match auth_for(inv, &zone, zone_mname(obs, &zone).as_ref()) {
        Ok(a) => a,
        Err(error) => return outcome(zp, ZoneResult::Failed { error }, vec![]),
    };
    let primary = match primary(inv, obs, &zone).await {
        Ok(p) => p,
        Err(error) => return outcome(zp, ZoneResult::Failed { error }, vec![]),
    };
    let timeout = observe::worst_case(inv.defaults.timeout, inv.defaults.retries);
    let mut attempts = 0;
    loop {
        if steer.halt.load(Ordering::SeqCst) {
            zp.held.push(crate::plan::Held { record: None, reason: "not sent: kmsdns is stopping".into() });
            return outcome(zp, ZoneResult::NotApplied, vec![]);
        }
        attempts += 1;
        let update = RrsetUpdate {
            zone: zone.name.clone(),
            expected: zp.before.clone(),
            deletes: zp.deletes().cloned().collect(),
            adds: zp.adds().cloned().collect(),
        };
        let reasons = zp.changes.iter().map(|c| format!("{} {}: {}", c.code.as_str(), c.record, c.reason)).collect();
        let sent = {
            // A primary takes only so many updates at once (BIND's update-quota is 100, and
            // its listen queue is short); beyond that it drops them and we would time out.
            let _slot = update_slot(primary).acquire_owned().await;
            apply::commit(mode, Authority::Policy(zone.policy), primary, &auth, &update, reasons, None, timeout).await
        };
        match sent {
            Ok(Committed::NotSent) => return outcome(zp, ZoneResult::WouldApply, vec![]),
            Ok(Committed::Applied { id }) => {
                let seen = await_propagation(inv, &zone, &update, Some(primary)).await;
                if seen.primary_unchanged {
                    let error = not_applied(mode, id, &zone.name, primary);
                    return outcome(zp, ZoneResult::Failed { error }, seen.servers);
                }
                let lagging = seen.servers.iter().filter(|s| !s.converged).map(|s| s.server.clone()).collect();
                return outcome(zp, ZoneResult::Applied { id, attempts, lagging }, seen.servers);
            }
            Err(CommitError::Update { source, .. })
                if source.is_conflict() && steer.replan && attempts <= CONFLICT_RETRIES =>
            {
                // Someone changed the RRset: look again, plan again, from what is there now.
                let mut fresh = observe::observe_zone(inv, &zone.name).await;
                if let Some(h) = steer.health {
                    fresh.probes = h.effective();
                }
                let seen = crate::cycle::judge(inv, fresh);
                let Some(again) = crate::cycle::plan(inv, &seen).zones.into_iter().find(|p| p.zone == zone.name) else {
                    let error = "the zone was not planned again".to_string();
                    return outcome(zp, ZoneResult::Failed { error }, vec![]);
                };
                zp = again;
                if !zp.will_apply() {
                    let result = if zp.changes.is_empty() {
                        ZoneResult::SettledByOther { attempts }
                    } else {
                        ZoneResult::NotApplied
                    };
                    return outcome(zp, result, vec![]);
                }
            }
            Err(CommitError::Update { source, .. }) if source.is_conflict() => {
                return outcome(zp, ZoneResult::Conflict { attempts, error: source.to_string() }, vec![]);
            }
            Err(e) => return outcome(zp, ZoneResult::Failed { error: e.to_string() }, vec![]),
        }
    }
}

/// The evidence behind the deletes of one run, read again: each target's addresses over TCP,
/// and (one-shot runs) each endpoint's confirming probes, each made once however many zones
/// publish it.
#[derive(Default)]
pub struct Confirmations {
    endpoints: std::sync::Mutex<std::collections::HashMap<SocketAddr, Arc<tokio::sync::OnceCell<Confirmation>>>>,
    names: std::sync::Mutex<std::collections::HashMap<DnsName, Arc<tokio::sync::OnceCell<Resolution>>>>,
    over_tcp: tokio::sync::OnceCell<observe::AddressLookup>,
}

/// What the probes made just before a delete found at one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    /// Every probe failed: the last one's answer.
    Failed { probes: u32, last: ProbeState },
    /// A probe was answered as a KMS host.
    Answered { after: u32 },
}

impl Confirmations {
    async fn of(&self, inv: &Inventory, endpoint: SocketAddr) -> Confirmation {
        let cell = {
            let mut map = self.endpoints.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(endpoint).or_default().clone()
        };
        cell.get_or_init(|| confirm(inv, endpoint)).await.clone()
    }

    /// `name`'s addresses read again, every question over TCP.
    async fn reread(&self, inv: &Inventory, name: &DnsName) -> Resolution {
        let cell = {
            let mut map = self.names.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(name.clone()).or_default().clone()
        };
        cell.get_or_init(|| async {
            let lookup = self.over_tcp.get_or_init(|| observe::AddressLookup::over_tcp(inv)).await;
            lookup.addresses(name).await
        })
        .await
        .clone()
    }
}

/// Whether a re-read says what the observation said: the same addresses, or "no address" both
/// times. Anything else, a failed re-read included, means the evidence did not hold.
fn same_resolution(then: Option<&Resolution>, now: &Resolution) -> bool {
    match (then, now) {
        (
            Some(Resolution::Addresses { addresses: a, .. }),
            Resolution::Addresses { addresses: b, incomplete: None },
        ) => a == b,
        (Some(Resolution::NoAddress), Resolution::NoAddress) => true,
        _ => false,
    }
}

fn describe_resolution(r: Option<&Resolution>) -> String {
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
async fn confirm(inv: &Inventory, endpoint: SocketAddr) -> Confirmation {
    let n = inv.defaults.confirm_probes.max(1);
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
/// - with `probe`, for `stale-dead`/`not-kms`: every address probed again `confirm_probes`
///   times over `confirm_window`; one KMS answer keeps the record.
///
/// The evidence of each delete that stays is written into its reason. Keeping a record can
/// break no rail: it only leaves more of the zone as it was.
async fn confirm_deletes(
    inv: &Inventory,
    obs: &Observation,
    zp: &mut ZonePlan,
    confirmations: &Confirmations,
    probe: bool,
) {
    use crate::audit::Code;
    use crate::plan::{Action, Held};
    let window = humantime::format_duration(inv.defaults.confirm_window);
    let mut kept = Vec::new();
    for mut change in std::mem::take(&mut zp.changes) {
        let on_evidence = change.action == Action::Delete
            && matches!(change.code, Code::StaleDead | Code::NotKms | Code::StaleUnresolvable);
        if !on_evidence {
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
            Resolution::Addresses { addresses, .. } if probe => addresses.clone(),
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
                Confirmation::Failed { probes, last } => evidence
                    .push(format!("{ep}: {probes} of {probes} probes over {window} failed, the last {}", last.code())),
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
}

/// A NOERROR the primary's own answers give the lie to: journaled as not applied (the last
/// outcome line of an entry is the one that counts), and said so.
fn not_applied(mode: Mode<'_>, id: u64, zone: &DnsName, primary: SocketAddr) -> String {
    let why = format!(
        "{primary} answered NOERROR to journal entry {id} but still serves _vlmcs._tcp.{zone} exactly as before: it did not apply the update (an update policy that refuses and answers NOERROR? check its log)"
    );
    if let Mode::Apply(journal) = mode
        && let Err(e) =
            journal.outcome(id, crate::journal::Applied::NotApplied, &format!("NOERROR, not applied: {why}"))
    {
        tracing::error!("zone {zone}: journal entry {id}: {e}");
    }
    why
}

/// How a zone's updates are signed. GSS-TSIG needs the DNS server's name for its Kerberos
/// service (DNS/<fqdn>): `primary =` when it is a name, else the SOA MNAME the servers gave.
pub fn auth_for(inv: &Inventory, zone: &Zone, mname: Option<&DnsName>) -> Result<apply::Auth, String> {
    #[cfg(not(feature = "gss-tsig"))]
    let _ = mname;
    if zone.gss_tsig {
        #[cfg(feature = "gss-tsig")]
        {
            let server_name = match zone.primary.as_ref().map(|p| &p.host) {
                Some(ServerHost::Name(n)) => n.clone(),
                _ => mname.cloned().ok_or_else(|| {
                    format!(
                        "zone {}: GSS-TSIG needs the DNS server's name and no SOA MNAME was read: set primary = \"<the DC's FQDN>\"",
                        zone.name
                    )
                })?,
            };
            let principal = inv.ad.as_ref().and_then(|a| a.principal.clone());
            return Ok(apply::Auth::Gss { server_name, principal });
        }
        #[cfg(not(feature = "gss-tsig"))]
        return Err(format!("zone {}: this kmsdns was built without GSS-TSIG", zone.name));
    }
    match zone.update_key.as_ref() {
        Some(name) => {
            let spec = inv.key(name).ok_or_else(|| format!("zone {}: no [[key]] named {name}", zone.name))?;
            TsigKey::load(spec).map(apply::Auth::Tsig).map_err(|e| e.to_string())
        }
        None if zone.allow_unsigned => Ok(apply::Auth::Unsigned),
        None => {
            Err(format!("zone {}: no update_key, update_auth or allow_unsigned: updates cannot be sent", zone.name))
        }
    }
}

/// The SOA MNAME of a zone, as the observation read it.
pub fn zone_mname(obs: &Observation, zone: &Zone) -> Option<DnsName> {
    obs.zones.iter().find(|v| v.zone == zone.name).and_then(|v| v.servers.iter().find_map(|s| s.mname.clone()))
}

/// The SOA MNAME from the first of the zone's servers that gives one.
pub async fn read_mname(inv: &Inventory, zone: &Zone) -> Option<DnsName> {
    let reader = DnsReader::new(inv.defaults.timeout, inv.defaults.retries);
    for server in server_addrs(inv, &zone.servers).await {
        if let (_, _, Some(m)) = reader.zone_view(server, &zone.name).await {
            return Some(m);
        }
    }
    None
}

/// The addresses of a zone's servers, names looked up through the system resolver (as
/// observation does); a server whose name does not resolve is left out.
pub async fn server_addrs(inv: &Inventory, servers: &[ServerAddr]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for s in servers {
        out.extend(observe::dns::server_socket_addrs(s, inv.defaults.timeout).await.unwrap_or_default());
    }
    out
}

/// A host's addresses as kmsdns looks them up everywhere: from its zone's servers when it lies
/// in a declared zone, else through the system resolver.
pub async fn addresses_of(inv: &Inventory, name: &DnsName) -> Resolution {
    observe::AddressLookup::new(inv).await.addresses(name).await
}

/// Where a zone's updates go: `primary =`, or the SOA MNAME on port 53.
pub async fn primary(inv: &Inventory, obs: &Observation, zone: &Zone) -> Result<SocketAddr, String> {
    resolve_primary(inv, zone, zone_mname(obs, zone)).await
}

/// Where a zone's updates go, given the SOA MNAME its servers gave (if any was read).
pub async fn resolve_primary(inv: &Inventory, zone: &Zone, mname: Option<DnsName>) -> Result<SocketAddr, String> {
    let (host, port) = match &zone.primary {
        Some(ServerAddr { host, port }) => (host.clone(), *port),
        None => {
            let mname = mname.ok_or_else(|| {
                format!("zone {}: no SOA MNAME was read, so the primary is unknown; set `primary =`", zone.name)
            })?;
            (ServerHost::Name(mname), 53)
        }
    };
    let name = match host {
        ServerHost::Ip(ip) => return Ok(SocketAddr::new(ip, port)),
        ServerHost::Name(n) => n,
    };
    match addresses_of(inv, &name).await {
        Resolution::Addresses { addresses, .. } => Ok(SocketAddr::new(addresses[0], port)),
        Resolution::NoAddress => Err(format!("zone {}: the primary {name} has no address; set `primary =`", zone.name)),
        Resolution::Failed { error } => {
            Err(format!("zone {}: the primary {name} could not be resolved ({error}); set `primary =`", zone.name))
        }
    }
}

/// What the zone's servers served after a change.
#[derive(Debug, Clone, PartialEq)]
pub struct Propagation {
    pub servers: Vec<ServerCheck>,
    /// The primary the change went to still serves the RRset exactly as it was before: the
    /// server answered NOERROR but did not apply the change (PowerDNS does so when its
    /// update policy refuses).
    pub primary_unchanged: bool,
}

/// Polls every server of the zone until the change is visible on each (what it removed is
/// absent, what it added is present: another writer may have moved the RRset on since), or
/// the propagation timeout passes; returns what each answered last. `primary`, when given, is
/// read too, to tell a change that was never applied from one that is slow to spread.
pub async fn await_propagation(
    inv: &Inventory,
    zone: &Zone,
    update: &RrsetUpdate,
    primary: Option<SocketAddr>,
) -> Propagation {
    let reader = DnsReader::new(inv.defaults.timeout, inv.defaults.retries);
    let deadline = Instant::now() + inv.defaults.propagation_timeout;
    let after = update.after();
    let mut last: Vec<ServerCheck> = Vec::new();
    let mut round = 0;
    loop {
        last.clear();
        for s in &zone.servers {
            let answer = match observe::dns::server_socket_addrs(s, inv.defaults.timeout).await {
                Ok(addrs) => match addrs.first() {
                    Some(a) => reader.zone_view(*a, &zone.name).await.0,
                    None => {
                        SrvAnswer::Failed { error: observe::ReadError::Network("the server has no address".into()) }
                    }
                },
                Err(error) => SrvAnswer::Failed { error },
            };
            let converged = answer.known_records().is_some_and(|rs| update.visible_in(rs));
            let moved_on = converged && answer.known_records().is_some_and(|rs| !same_rrset(rs, &after));
            last.push(ServerCheck { server: s.to_string(), converged, moved_on, answer: describe(&answer) });
        }
        if last.iter().all(|s| s.converged) {
            return Propagation { servers: last, primary_unchanged: false };
        }
        if Instant::now() >= deadline {
            // Changed nothing at all on the primary itself: not applied. Unreadable: unknown,
            // and the server's NOERROR stands.
            let primary_unchanged = match primary {
                Some(p) if !same_rrset(&update.expected, &after) => reader
                    .zone_view(p, &zone.name)
                    .await
                    .0
                    .known_records()
                    .is_some_and(|rs| same_rrset(rs, &update.expected)),
                _ => false,
            };
            return Propagation { servers: last, primary_unchanged };
        }
        tokio::time::sleep(poll_pause(round)).await;
        round = round.saturating_add(1);
    }
}

/// The pause after poll round `round` of [`await_propagation`]: 25, 50, 100 ms, then 200 ms.
/// A secondary usually has the change within tens of milliseconds of the primary's NOERROR
/// (NOTIFY + IXFR), and each zone holds a concurrency permit while it waits: a fixed 200 ms
/// made that wait, not the primary, the limit of a large repair (bench/README.md).
fn poll_pause(round: u32) -> Duration {
    Duration::from_millis(25 << round.min(3))
}

fn describe(answer: &SrvAnswer) -> String {
    match answer {
        SrvAnswer::Records { records } => records.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", "),
        SrvAnswer::NoData | SrvAnswer::NxDomain => "no SRV records".into(),
        SrvAnswer::Failed { error } => format!("unreadable: {error}"),
    }
}

/// What `kmsdns undo` did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UndoOutcome {
    /// The journal entry undone.
    pub undone: u64,
    pub zone: DnsName,
    /// The RRset found (the undone entry's "after") and restored (its "before").
    pub from: Vec<SrvRecord>,
    pub to: Vec<SrvRecord>,
    pub result: ZoneResult,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<ServerCheck>,
    /// For an ACL change: the dnsNode whose DACL was put back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acl_of: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum UndoError {
    #[error("entry {0} changed an ACL in Active Directory, and the inventory has no [ad] section to reach it")]
    NoDirectory(u64),
    #[error("{0}")]
    Directory(String),
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    #[error("entry {0} was not applied, so there is nothing to undo")]
    NotApplied(u64),
    #[error("zone {0} is no longer in the inventory")]
    UnknownZone(DnsName),
    #[error("the entry's server '{0}' is not an address")]
    Server(String),
    #[error("{0}")]
    Auth(String),
}

/// Restores the RRset a journal entry changed, if it is still as that entry left it: the
/// update asserts the entry's "after" as its prerequisite, so a later change is never undone
/// by accident. The undo is itself journaled.
pub async fn undo(
    inv: &Inventory,
    journal: &crate::journal::Journal,
    id: u64,
    override_policy: bool,
) -> Result<UndoOutcome, UndoError> {
    use crate::journal::Applied;
    let mut entry = journal.entry(id)?;
    if entry.outcome.as_ref().is_some_and(|o| o.result == Applied::Unknown) && entry.intent.acl.is_none() {
        // Settle it first from what the servers serve now.
        journal.settle_unknown(&observe::observe_zone(inv, &entry.intent.zone).await)?;
        entry = journal.entry(id)?;
    }
    // An unknown outcome may still be undone: the undo's prerequisite is the entry's "after",
    // so if the change was never made the server refuses the undo and nothing is clobbered.
    match entry.outcome.as_ref().map(|o| o.result) {
        Some(Applied::Applied | Applied::Unknown) => {}
        Some(Applied::NotApplied) | None => return Err(UndoError::NotApplied(id)),
    }
    let i = entry.intent;
    if let Some(change) = &i.acl {
        let policy = inv.zone(&i.zone).map(|z| z.policy).ok_or_else(|| UndoError::UnknownZone(i.zone.clone()))?;
        return undo_acl_entry(inv, journal, id, &i.zone, change, Authority::over(policy, override_policy)).await;
    }
    let zone = inv.zone(&i.zone).cloned().ok_or_else(|| UndoError::UnknownZone(i.zone.clone()))?;
    let server: SocketAddr = i.server.parse().map_err(|_| UndoError::Server(i.server.clone()))?;
    let mname = if zone.gss_tsig { read_mname(inv, &zone).await } else { None };
    let auth = auth_for(inv, &zone, mname.as_ref()).map_err(UndoError::Auth)?;
    let update = RrsetUpdate {
        zone: zone.name.clone(),
        expected: i.after.clone(),
        deletes: i.after.iter().filter(|a| !i.before.iter().any(|b| b.same_rdata(a))).cloned().collect(),
        adds: i.before.iter().filter(|b| !i.after.iter().any(|a| a.same_rdata(b))).cloned().collect(),
    };
    let timeout = observe::worst_case(inv.defaults.timeout, inv.defaults.retries);
    let reasons = vec![format!("undo of journal entry {id}")];
    let authority = Authority::over(zone.policy, override_policy);
    let (result, servers) = match apply::commit(
        Mode::Apply(journal),
        authority,
        server,
        &auth,
        &update,
        reasons,
        Some(id),
        timeout,
    )
    .await
    {
        Ok(Committed::Applied { id: new }) => {
            let seen = await_propagation(inv, &zone, &update, Some(server)).await;
            if seen.primary_unchanged {
                let error = not_applied(Mode::Apply(journal), new, &zone.name, server);
                (ZoneResult::Failed { error }, seen.servers)
            } else {
                let lagging = seen.servers.iter().filter(|s| !s.converged).map(|s| s.server.clone()).collect();
                (ZoneResult::Applied { id: new, attempts: 1, lagging }, seen.servers)
            }
        }
        Ok(Committed::NotSent) => (ZoneResult::WouldApply, vec![]),
        Err(CommitError::Update { source, .. }) if source.is_conflict() => {
            let error =
                format!("{source}: the RRset was changed after entry {id}, so undoing it would clobber that change");
            (ZoneResult::Conflict { attempts: 1, error }, vec![])
        }
        Err(e) => (ZoneResult::Failed { error: e.to_string() }, vec![]),
    };
    Ok(UndoOutcome { undone: id, zone: zone.name, from: i.after, to: i.before, result, servers, acl_of: None })
}

async fn undo_acl_entry(
    inv: &Inventory,
    journal: &crate::journal::Journal,
    id: u64,
    zone: &DnsName,
    change: &crate::journal::AclChange,
    authority: Authority,
) -> Result<UndoOutcome, UndoError> {
    use crate::apply::acl::{AclCommitted, AclError, undo_acl};
    let settings = inv.ad.as_ref().ok_or(UndoError::NoDirectory(id))?;
    let timeout = inv.defaults.timeout.max(Duration::from_secs(2));
    let (mut ldap, _) = crate::observe::ad::connect(settings, timeout).await.map_err(UndoError::Directory)?;
    let result = match undo_acl(journal, authority, &mut ldap, zone, change, id, timeout).await {
        Ok(AclCommitted::Applied { id: new }) => ZoneResult::Applied { id: new, attempts: 1, lagging: vec![] },
        Ok(AclCommitted::NotSent) => ZoneResult::WouldApply,
        Err(e @ AclError::Changed { .. }) => ZoneResult::Conflict {
            attempts: 1,
            error: format!("{e}: the ACL was changed after entry {id}, so putting it back would clobber that change"),
        },
        Err(e) => ZoneResult::Failed { error: e.to_string() },
    };
    let _ = ldap.unbind().await;
    Ok(UndoOutcome {
        undone: id,
        zone: zone.clone(),
        from: vec![],
        to: vec![],
        result,
        servers: vec![],
        acl_of: Some(change.dn.clone()),
    })
}

/// What `kmsdns repair --acl` did for one zone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AclOutcome {
    pub zone: DnsName,
    /// The `_vlmcs._tcp` dnsNode.
    pub dn: String,
    /// The active hosts whose updates the ACL refuses.
    pub blocked: Vec<DnsName>,
    /// The ACE added, in SDDL.
    pub ace: String,
    pub result: AclResult,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum AclResult {
    WouldApply,
    /// Shown, not written: the zone's policy is "audit" and no override was given.
    NotApplied {
        reason: String,
    },
    /// Written (journal entry `id`) and read back: members of the group may now update.
    Applied {
        id: u64,
        verified: bool,
    },
    Failed {
        error: String,
    },
}

/// The whole `repair --acl` answer: per zone, and the hosts that are not in the group yet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AclRepair {
    pub group: Option<String>,
    pub zones: Vec<AclOutcome>,
    /// Inventory accounts that are not members of kms_group: the ACE does not help them until
    /// they join, and take a new Kerberos ticket.
    pub not_members: Vec<String>,
    /// Why nothing could be done at all (no directory, no group), when that is the case.
    pub error: Option<String>,
}

/// Grants the KMS group write access to every `_vlmcs._tcp` node that blocks an active host.
pub async fn repair_acl(
    inv: &Inventory,
    obs: &Observation,
    findings: &[crate::audit::Finding],
    mode: Mode<'_>,
    override_policy: bool,
) -> AclRepair {
    use crate::apply::acl::{AclCommitted, AclFix, GRANT, commit_acl};
    use crate::audit::access::may_update;
    use crate::observe::ad::AdRead;
    use crate::wire::security::Ace;

    let mut out = AclRepair { group: None, zones: vec![], not_members: vec![], error: None };
    let (Some(settings), Some(ad)) = (&inv.ad, &obs.ad) else {
        out.error = Some("no [ad] section: the ACL lives in Active Directory".into());
        return out;
    };
    let view = match ad {
        AdRead::Read(v) => v,
        AdRead::Failed { error } => {
            out.error = Some(format!("the directory could not be read: {error}"));
            return out;
        }
    };
    out.group = settings.kms_group.clone();
    let group = match (&settings.kms_group, &view.kms_group) {
        (Some(_), Some(Ok(g))) => g.clone(),
        (Some(name), Some(Err(e))) => {
            out.error = Some(format!("kms_group '{name}': {e}; create it and add every KMS host's account"));
            return out;
        }
        _ => {
            out.error = Some("set [ad] kms_group: the group of all KMS hosts that the fix grants write access".into());
            return out;
        }
    };
    for h in inv.hosts.iter().filter(|h| h.state == HostState::Active) {
        if let Some(account) = &h.account
            && let Some(Ok(a)) = view.accounts.get(account)
            && !a.groups.contains(&group.sid)
        {
            out.not_members.push(account.clone());
        }
    }
    let ace = Ace::allow(group.sid, GRANT).to_sddl(None);
    let timeout = inv.defaults.timeout.max(Duration::from_secs(2));
    let mut ldap = None;
    for z in &view.zones {
        let blocked: Vec<DnsName> = findings
            .iter()
            .filter(|f| f.zone == z.zone && f.code == crate::audit::Code::UpdateBlockedAcl)
            .filter_map(|f| f.target.clone())
            .collect();
        let (Some(node), false) = (&z.node, blocked.is_empty()) else { continue };
        let Some(sd) = node.sd.clone() else { continue };
        // The group may write already: the hosts still blocked are not (yet) in it, which a
        // second ACE would not change (see not_members).
        if may_update(&sd, &[group.sid]).allowed() {
            continue;
        }
        let mut outcome = AclOutcome {
            zone: z.zone.clone(),
            dn: node.dn.clone(),
            blocked,
            ace: ace.clone(),
            result: AclResult::WouldApply,
        };
        let policy = inv.zone(&z.zone).map(|zone| zone.policy).unwrap_or(crate::inventory::Policy::Audit);
        let authority = Authority::over(policy, override_policy);
        if let Err(e) = authority.check(&z.zone) {
            outcome.result = AclResult::NotApplied { reason: e.to_string() };
            out.zones.push(outcome);
            continue;
        }
        let fix = AclFix { zone: z.zone.clone(), dn: node.dn.clone(), group: group.sid, observed: sd };
        if let Mode::Apply(_) = mode
            && ldap.is_none()
        {
            match crate::observe::ad::connect(settings, timeout).await {
                Ok((l, _)) => ldap = Some(l),
                Err(error) => {
                    outcome.result = AclResult::Failed { error };
                    out.zones.push(outcome);
                    continue;
                }
            }
        }
        let reasons = vec![format!("update-blocked-acl: grant {} write access to {}", group.dn, node.dn)];
        outcome.result = match ldap.as_mut() {
            None => AclResult::WouldApply,
            Some(l) => match commit_acl(mode, authority, l, &fix, reasons, timeout).await {
                Ok(AclCommitted::NotSent) => AclResult::WouldApply,
                Ok(AclCommitted::Applied { id }) => {
                    // Read it back: a member of the group must now pass the access check.
                    let verified =
                        match crate::observe::ad::read_sd(l, &node.dn, crate::observe::ad::OWNER_GROUP_DACL, timeout)
                            .await
                        {
                            Ok(bytes) => crate::wire::security::SecurityDescriptor::parse(&bytes)
                                .map(|sd| may_update(&sd, &[group.sid]).allowed())
                                .unwrap_or(false),
                            Err(_) => false,
                        };
                    AclResult::Applied { id, verified }
                }
                Err(e) => AclResult::Failed { error: e.to_string() },
            },
        };
        out.zones.push(outcome);
    }
    if let Some(mut l) = ldap {
        let _ = l.unbind().await;
    }
    out
}

#[cfg(test)]
mod poll_tests {
    use super::*;

    #[test]
    fn propagation_polls_start_soon_and_settle_at_200_ms() {
        let pauses: Vec<u64> = (0..6).map(|r| poll_pause(r).as_millis() as u64).collect();
        assert_eq!(pauses, [25, 50, 100, 200, 200, 200]);
        assert_eq!(poll_pause(u32::MAX), Duration::from_millis(200));
    }
}
