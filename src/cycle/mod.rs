//! The one cycle: observe → audit → plan → apply → verify → journal, and every command as
//! steps of it.
//!
//! Every command composes its work from these steps, in this order: `audit` stops after the
//! audit, `plan` after the plan, [`repair()`] and [`apply_reviewed`] go on to carry it out, the
//! daemon runs the whole cycle on its timer (with its hysteresis verdicts in place of single
//! probes), the demo runs it on its loopback world, [`failover()`] runs it on an inventory
//! override with the failover's planner ([`crate::plan::failover`]), and a zone that hits a
//! prerequisite conflict is observed again ([`observe::observe_zone`]), judged and planned
//! again by the same planner. [`repair_acl()`] and [`undo()`] are the two writes that are not
//! a plan of records: an ACL grant the audit asks for, and a journaled change reversed. No
//! command assembles the steps its own way, so no command sees the world differently from
//! another. Where a command's changes go is a [`Changes`]: nowhere (a dry run) or to the
//! servers through the journal. The CLI calls these and prints what they return.
//!
//! Apply, verify and journal are one step ([`carry_out`]), in these files:
//! - [`confirm`]: the evidence of each delete read again just before it is sent (addresses
//!   over TCP; a one-shot run probes a dead host again);
//! - [`primary`]: where the zone's update goes and how it is signed;
//! - [`carry`]: the UPDATE through [`crate::apply::commit`], the only sender, which enforces
//!   the policy, the dry run and the journal; the conflict loop;
//! - [`verify`]: the change visible on every server, and a NOERROR the primary did not apply
//!   told apart;
//! - [`mod@undo`] and [`mod@acl`]: `kmsdns undo` and `kmsdns repair --acl`.

pub mod acl;
pub mod carry;
pub mod confirm;
pub mod primary;
pub mod undo;
pub mod verify;

pub use acl::{AclOutcome, AclRepair, AclResult};
pub use carry::{CONFLICT_RETRIES, Replan, Steer, ZoneOutcome, ZoneResult};
pub use undo::{UndoError, UndoOutcome};
pub use verify::ServerCheck;

use std::path::Path;

use crate::apply::Mode;
use crate::audit::{Finding, audit};
use crate::inventory::Inventory;
use crate::journal::{Entry, Intent, Journal, JournalError};
use crate::model::Observation;
use crate::observe::{self};
use crate::plan::Plan;
use crate::plan::file::PlanFile;

/// What one observation showed, judged.
#[derive(Debug, Clone)]
pub struct Seen {
    pub obs: Observation,
    pub findings: Vec<Finding>,
}

/// Observe every zone and host of the inventory, and audit what was seen.
pub async fn observe(inv: &Inventory) -> Seen {
    judge(inv, observe::observe(inv).await)
}

/// Audit an observation (the daemon's, once its hysteresis verdicts replace the probes).
pub fn judge(inv: &Inventory, obs: Observation) -> Seen {
    let findings = audit(inv, &obs);
    Seen { obs, findings }
}

/// The plan for what was seen, behind every safety rail.
pub fn plan(inv: &Inventory, seen: &Seen) -> Plan {
    crate::plan::plan(inv, &seen.obs, &seen.findings)
}

/// How the plan is carried out.
pub enum Carry<'a> {
    /// A plan made in this run: a zone that hits a conflict is observed and planned again.
    Planned,
    /// A plan someone reviewed (`kmsdns apply FILE`): re-checked by the rails on what was seen
    /// now, and never planned again after a conflict, since a new plan is one nobody reviewed.
    Reviewed,
    /// The daemon's steering: its halt flag and hysteresis.
    Daemon(&'a Steer<'a>),
    /// A failover's plan: a zone that hits a conflict is observed and planned again by the
    /// failover's planner; `override_policy` lets audit-only zones be written.
    Failover { failover: &'a crate::plan::failover::Failover, override_policy: bool },
}

/// Apply, verify and journal: each zone's change sent through the one sender, verified on
/// every server, journaled.
pub async fn carry_out(inv: &Inventory, seen: &Seen, plan: Plan, mode: Mode<'_>, how: Carry<'_>) -> Vec<ZoneOutcome> {
    match how {
        Carry::Planned => carry::carry_out(inv, &seen.obs, plan, mode).await,
        Carry::Reviewed => carry::carry_out_reviewed(inv, &seen.obs, plan, mode).await,
        Carry::Daemon(steer) => carry::carry_out_with(inv, &seen.obs, plan, mode, steer).await,
        Carry::Failover { failover, override_policy } => {
            let steer = Steer::one_shot(Replan::Failover(failover), override_policy);
            carry::carry_out_with(inv, &seen.obs, plan, mode, &steer).await
        }
    }
}

/// Where a command's changes go.
pub enum Changes {
    /// Plan and show; send nothing, write nothing (not even the journal's directory).
    DryRun,
    /// Send, each change journaled before it goes.
    Journaled(Journal),
}

impl Changes {
    /// A dry run, or the journal in `state_dir` opened for writing. Changes that a crash left
    /// without an outcome are returned, to be reported: the next observation settles them.
    /// Each change is journaled as `instance`'s.
    pub fn open(
        state_dir: &Path,
        apply: bool,
        instance: &crate::peers::InstanceId,
    ) -> Result<(Changes, Vec<Intent>), JournalError> {
        if !apply {
            return Ok((Changes::DryRun, vec![]));
        }
        let mut journal = Journal::open(state_dir)?.for_instance(instance);
        let interrupted = journal.settle_interrupted()?;
        journal.hold_writer()?;
        Ok((Changes::Journaled(journal), interrupted))
    }

    /// The journal's entries, oldest first; none in a dry run.
    pub fn entries(&self) -> Result<Vec<Entry>, JournalError> {
        match self {
            Changes::DryRun => Ok(vec![]),
            Changes::Journaled(j) => j.entries(),
        }
    }

    fn mode(&self) -> Mode<'_> {
        match self {
            Changes::DryRun => Mode::DryRun,
            Changes::Journaled(j) => Mode::Apply(j),
        }
    }

    fn applying(&self) -> bool {
        matches!(self, Changes::Journaled(_))
    }
}

/// `kmsdns repair`: the whole cycle, once.
pub async fn repair(inv: &Inventory, changes: &Changes) -> (Seen, Vec<ZoneOutcome>) {
    let seen = observe(inv).await;
    let plan = plan(inv, &seen);
    let outcomes = carry_out(inv, &seen, plan, changes.mode(), Carry::Planned).await;
    (seen, outcomes)
}

/// Why a reviewed plan was not carried out at all.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// A dry run cannot carry out a reviewed plan: it is applied or not at all.
    #[error("a reviewed plan is applied with the journal; this was a dry run")]
    DryRun,
    #[error(
        "what the servers and hosts answer now differs from what the plan was made from; make a new plan (`kmsdns plan --out FILE`) and review it"
    )]
    WorldMoved,
    #[error("{0}")]
    Fingerprint(String),
}

/// `kmsdns apply FILE`: a reviewed plan, carried out only if the world is still the one it was
/// made from, and then only what every rail allows now ([`Carry::Reviewed`]).
pub async fn apply_reviewed(
    inv: &Inventory,
    file: PlanFile,
    changes: &Changes,
) -> Result<(Seen, Vec<ZoneOutcome>), Refused> {
    if !changes.applying() {
        return Err(Refused::DryRun);
    }
    let seen = observe(inv).await;
    match crate::plan::file::fingerprint(&seen.obs) {
        Ok(now) if now == file.observation => {}
        Ok(_) => return Err(Refused::WorldMoved),
        Err(e) => return Err(Refused::Fingerprint(e.to_string())),
    }
    let plan = Plan { zones: file.zones };
    let outcomes = carry_out(inv, &seen, plan, changes.mode(), Carry::Reviewed).await;
    Ok((seen, outcomes))
}

/// `kmsdns repair --acl`: the audit, then the dnsNode ACL grants it asks for.
pub async fn repair_acl(inv: &Inventory, changes: &Changes, override_policy: bool) -> AclRepair {
    let seen = observe(inv).await;
    acl::repair_acl(inv, &seen.obs, &seen.findings, changes.mode(), override_policy).await
}

/// `kmsdns undo ID`: the journaled change reversed, guarded by what it left.
pub async fn undo(
    inv: &Inventory,
    changes: &Changes,
    id: u64,
    override_policy: bool,
) -> Result<UndoOutcome, UndoError> {
    match changes {
        Changes::Journaled(j) => undo::undo(inv, j, id, override_policy).await,
        Changes::DryRun => Err(UndoError::DryRun),
    }
}

/// `kmsdns failover`: the runbook after a KMS host dies.
pub async fn failover(inv: &Inventory, req: &crate::failover::Request, changes: &Changes) -> crate::failover::Runbook {
    crate::failover::failover(inv, req, changes.mode()).await
}
