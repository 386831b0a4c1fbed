//! Carrying a plan out: one prerequisite-guarded UPDATE per zone, sent through
//! [`crate::apply::commit`], then checked on every server of the zone.
//!
//! When the prerequisite fails (someone changed the RRset since it was observed), the zone is
//! observed and planned again and the update retried, at most twice; a plan that comes out
//! empty means the other writer already did the work. What another writer did is never
//! overwritten: each retry asserts the RRset as it is now.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::apply::{self, Authority, CommitError, Committed, Mode, RrsetUpdate};
use crate::audit::audit;
use crate::inventory::Inventory;
use crate::model::Observation;
use crate::name::DnsName;
use crate::observe::{self};
use crate::plan::{Plan, ZonePlan};

use super::confirm::{Confirmations, confirm_deletes};
use super::primary::{auth_for, primary, zone_mname};
use super::verify::{ServerCheck, await_propagation};

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

/// Carries out `plan` zone by zone, concurrently under the inventory's bound.
pub async fn carry_out(inv: &Inventory, obs: &Observation, plan: Plan, mode: Mode<'_>) -> Vec<ZoneOutcome> {
    carry_out_with(inv, obs, plan, mode, &Steer::one_shot(Replan::Inventory, false)).await
}

/// Carries out a reviewed plan (`kmsdns apply`). The plan is not trusted as written: each
/// zone is checked again against `obs` (the observation of now) with every rail of the
/// planner ([`crate::plan::recheck`]), and only what the planner would still do now is sent.
/// On a conflict the zone is reported, never planned again, since a new plan is one nobody
/// reviewed.
pub async fn carry_out_reviewed(inv: &Inventory, obs: &Observation, plan: Plan, mode: Mode<'_>) -> Vec<ZoneOutcome> {
    let findings = audit(inv, obs);
    let plan = crate::plan::recheck(inv, obs, &findings, &plan.zones);
    carry_out_with(inv, obs, plan, mode, &Steer::one_shot(Replan::Never, false)).await
}

/// How a command steers the carrying out of its plan: once `halt` is set no further update is
/// started (an update already sent is finished and journaled); `health`, when given (the
/// daemon), replaces single probes with the hysteresis verdicts whenever a zone is observed
/// again after a conflict; `replan` says how a zone is planned again after a conflict.
pub struct Steer<'a> {
    pub halt: &'a AtomicBool,
    pub health: Option<&'a crate::daemon::health::Hysteresis>,
    pub replan: Replan<'a>,
    /// The operator's `--override-policy`: zones with `policy = "audit"` are written too.
    pub override_policy: bool,
}

impl<'a> Steer<'a> {
    /// A command that runs once: nothing halts it, and each probe is its own evidence.
    pub fn one_shot(replan: Replan<'a>, override_policy: bool) -> Steer<'a> {
        static NEVER: AtomicBool = AtomicBool::new(false);
        Steer { halt: &NEVER, health: None, replan, override_policy }
    }
}

/// How a zone whose prerequisite failed is planned again, from a fresh observation of it.
pub enum Replan<'a> {
    /// Never: the plan was reviewed, and a new one is one nobody reviewed.
    Never,
    /// By the inventory's planner ([`crate::plan::plan`]).
    Inventory,
    /// By the failover's planner, on the failover's inventory.
    Failover(&'a crate::plan::failover::Failover),
}

/// [`carry_out`] under a command's steering.
pub async fn carry_out_with(
    inv: &Inventory,
    obs: &Observation,
    plan: Plan,
    mode: Mode<'_>,
    steer: &Steer<'_>,
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
    // A zone keeps its permit until its change is seen on every server: at most `concurrency`
    // changes are unverified at once, so the UPDATEs cannot outrun what the secondaries take
    // (bench/README.md: with the permit given up during the wait, the UPDATEs went faster and
    // the runs did not, the last zones reaching the secondary seconds after the last UPDATE).
    let limit = Arc::new(Semaphore::new(inv.defaults.concurrency));
    let confirmations = Confirmations::new(inv, steer.health.is_some());
    let confirmations = &confirmations;
    // One reader for every zone's propagation polls: a socket per server for the run.
    let reader = &observe::DnsReader::new(inv.defaults.timeout, inv.defaults.retries);
    let jobs = plan.zones.into_iter().map(|zp| {
        let limit = limit.clone();
        async move {
            let _permit = limit.acquire().await;
            repair_zone(inv, obs, zp, mode, steer, confirmations, reader).await
        }
    });
    futures_util::future::join_all(jobs).await
}

/// The zone's plan is to be sent: it has changes, and the zone's policy or the operator allows it.
pub(super) fn will_apply(zp: &ZonePlan, override_policy: bool) -> bool {
    zp.will_apply() || (override_policy && !zp.changes.is_empty())
}

pub(super) async fn repair_zone<'a>(
    inv: &'a Inventory,
    obs: &Observation,
    mut zp: ZonePlan,
    mode: Mode<'_>,
    steer: &Steer<'_>,
    confirmations: &Confirmations<'a>,
    reader: &observe::DnsReader,
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
    if !will_apply(&zp, steer.override_policy) {
        return outcome(zp, ZoneResult::NotApplied, vec![]);
    }
    // The evidence a delete rests on is read again just before it is sent, and a dead host is
    // probed again (see confirm_deletes): a verdict is older than the delete.
    confirm_deletes(inv, obs, &mut zp, confirmations).await;
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
    tracing::debug!("zone {}: the evidence of its changes holds; its update goes to {primary}", zone.name);
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
        let authority = Authority::over(zone.policy, steer.override_policy);
        let sent = apply::commit(mode, authority, primary, &auth, &update, reasons, None, timeout).await;
        match sent {
            Ok(Committed::NotSent) => return outcome(zp, ZoneResult::WouldApply, vec![]),
            Ok(Committed::Applied { id }) => {
                let seen = await_propagation(inv, reader, &zone, &update, Some(primary)).await;
                if seen.primary_unchanged {
                    let error = not_applied(mode, id, &zone.name, primary);
                    return outcome(zp, ZoneResult::Failed { error }, seen.servers);
                }
                let lagging = seen.servers.iter().filter(|s| !s.converged).map(|s| s.server.clone()).collect();
                return outcome(zp, ZoneResult::Applied { id, attempts, lagging }, seen.servers);
            }
            Err(CommitError::Update { source, .. })
                if source.is_conflict() && !matches!(steer.replan, Replan::Never) && attempts <= CONFLICT_RETRIES =>
            {
                // Someone changed the RRset: look again, plan again, from what is there now.
                let mut fresh = observe::observe_zone(inv, &zone.name).await;
                if let Some(h) = steer.health {
                    fresh.probes = h.effective();
                }
                let seen = crate::cycle::judge(inv, fresh);
                let again = match steer.replan {
                    Replan::Failover(f) => crate::plan::failover::plan(inv, &seen.obs, &seen.findings, f),
                    _ => crate::cycle::plan(inv, &seen),
                };
                let Some(again) = again.zones.into_iter().find(|p| p.zone == zone.name) else {
                    let error = "the zone was not planned again".to_string();
                    return outcome(zp, ZoneResult::Failed { error }, vec![]);
                };
                zp = again;
                if !will_apply(&zp, steer.override_policy) {
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

/// A NOERROR the primary's own answers give the lie to: journaled as not applied (the last
/// outcome line of an entry is the one that counts), and said so.
pub(super) fn not_applied(mode: Mode<'_>, id: u64, zone: &DnsName, primary: SocketAddr) -> String {
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
