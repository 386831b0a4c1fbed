//! The one cycle: observe → audit → plan → apply → verify → journal.
//!
//! Every command composes its work from these steps, in this order: `audit` stops after the
//! audit, `plan` after the plan, `repair` and `apply FILE` go on to carry it out, the daemon runs
//! the whole cycle on its timer (with its hysteresis verdicts in place of single probes), the
//! demo runs it on its loopback world, and a repair that hits a prerequisite conflict runs it
//! again for that zone ([`crate::repair`] calls [`judge`] and [`plan`] on a fresh
//! [`observe::observe_zone`]). No command assembles the steps its own way, so no command sees
//! the world differently from another.
//!
//! Apply, verify and journal are one step here ([`carry_out`]): [`crate::repair`] sends through
//! [`crate::apply::commit`], the only sender, which enforces the policy, the dry run and the
//! journal, and verifies each change on every server.

use crate::apply::Mode;
use crate::audit::{Finding, audit};
use crate::inventory::Inventory;
use crate::model::Observation;
use crate::observe::{self};
use crate::plan::Plan;
use crate::repair::{self, ZoneOutcome};

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
    Daemon(&'a repair::Daemon<'a>),
}

/// Apply, verify and journal: each zone's change sent through the one sender, verified on
/// every server, journaled.
pub async fn carry_out(inv: &Inventory, seen: &Seen, plan: Plan, mode: Mode<'_>, how: Carry<'_>) -> Vec<ZoneOutcome> {
    match how {
        Carry::Planned => repair::carry_out(inv, &seen.obs, plan, mode).await,
        Carry::Reviewed => repair::carry_out_reviewed(inv, &seen.obs, plan, mode).await,
        Carry::Daemon(steer) => repair::carry_out_with(inv, &seen.obs, plan, mode, steer).await,
    }
}
