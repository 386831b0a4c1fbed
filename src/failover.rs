//! `kmsdns failover`: the runbook after a KMS host dies, each step with its evidence and
//! result. It is the cycle on an inventory override ([`crate::plan::failover`]: the old host
//! decommissioned, the new one active in its zones), so it sees, plans, sends, verifies and
//! journals exactly as `repair` does.
//!
//! 1. Check, from the observation, that the new host answers as a KMS host, whether the old
//!    one still does, and (with `[ad]`) whether the new host's account may update the record.
//! 2. Plan with the failover's planner: in every zone of the old host, its records deleted and
//!    the new host's added when absent, one update per zone, asserting the RRset the servers
//!    serve now. The rails it overrides are stated per zone.
//! 3. Apply, through the journal (only with `--apply`), by the one carry-out of the cycle: a
//!    prerequisite conflict is observed and planned again by the same planner.
//! 4. Verify on every authoritative server (the cycle's verification), in the directory, and
//!    probe every target that remains.
//! 5. What is left for a person.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;

use serde::Serialize;

use crate::apply::{Mode, RrsetUpdate};
use crate::cycle::ZoneResult;
use crate::cycle::{self, Carry};
use crate::inventory::{HostState, Inventory, Policy, Zone};
use crate::model::ad::AdRead;
use crate::model::{Observation, ProbeState, Resolution};
use crate::name::DnsName;
use crate::plan::failover::Failover;
use crate::plan::{Action, ZonePlan};

/// What the admin asked for.
#[derive(Debug, Clone)]
pub struct Request {
    pub from: DnsName,
    pub to: DnsName,
    /// Write zones with `policy = "audit"` too (`--override-policy`).
    pub override_policy: bool,
}

/// The runbook as it ran.
#[derive(Debug, Clone, Serialize)]
pub struct Runbook {
    pub from: DnsName,
    pub to: DnsName,
    pub applied: bool,
    pub steps: Vec<Step>,
    /// What a person still has to do.
    pub left: Vec<String>,
    /// The longest TTL of the RRsets the failover replaces: how long resolvers and clients'
    /// caches may still hand out the old records. None when no zone needed a change.
    pub cache_ttl: Option<u32>,
    /// The port the new host is published on.
    pub to_port: u16,
    /// True when every zone was changed and every server verified (or, in a dry run, when
    /// the checks passed and the plan is ready).
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub title: String,
    pub result: StepResult,
    pub evidence: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepResult {
    Ok,
    Warning,
    Failed,
    Skipped,
}

impl Runbook {
    fn step(&mut self, title: &str, result: StepResult, evidence: Vec<String>) {
        self.steps.push(Step { title: title.into(), result, evidence });
    }
}

/// The evidence lines for a host at `port`, from what was looked up and probed, and whether
/// any address answered as KMS (None when that is unknown).
fn host_evidence(
    name: &DnsName,
    resolution: Option<&Resolution>,
    port: u16,
    state_of: impl Fn(SocketAddr) -> Option<ProbeState>,
) -> (Vec<String>, Option<bool>) {
    match resolution {
        Some(Resolution::Addresses { addresses, incomplete }) => {
            let mut lines = Vec::new();
            let mut up = false;
            let mut unprobed = false;
            for a in addresses {
                let ep = SocketAddr::new(*a, port);
                match state_of(ep) {
                    Some(state) => {
                        up |= state == ProbeState::KmsUp;
                        let detail = match &state {
                            ProbeState::KmsUp => String::new(),
                            ProbeState::NotKms(d) | ProbeState::Down(d) => format!(" ({d})"),
                        };
                        lines.push(format!("{name} {ep}: {}{detail}", state.code()));
                    }
                    None => {
                        unprobed = true;
                        lines.push(format!("{name} {ep}: not probed"));
                    }
                }
            }
            match incomplete {
                // Addresses a server could not tell us may be the live ones.
                Some(error) if !up => {
                    lines.push(format!("{name}: some of its addresses could not be read: {error}"));
                    (lines, None)
                }
                _ if unprobed && !up => (lines, None),
                _ => (lines, Some(up)),
            }
        }
        Some(Resolution::NoAddress) => (vec![format!("{name} has no A or AAAA record")], Some(false)),
        Some(Resolution::Failed { error }) => (vec![format!("{name}: address lookup failed: {error}")], None),
        None => (vec![format!("{name}: its addresses were not looked up")], None),
    }
}

/// A host as the observation saw it.
fn seen_host(obs: &Observation, name: &DnsName, port: u16) -> (Vec<String>, Option<bool>) {
    host_evidence(name, obs.names.get(name), port, |ep| obs.probes.get(&ep).cloned())
}

/// A host probed now, after the change.
async fn probe_host(inv: &Inventory, name: &DnsName, port: u16) -> (Vec<String>, Option<bool>) {
    let resolution = crate::cycle::primary::addresses_of(inv, name).await;
    let mut states = BTreeMap::new();
    if let Resolution::Addresses { addresses, .. } = &resolution {
        for a in addresses {
            let ep = SocketAddr::new(*a, port);
            states.insert(ep, crate::observe::probe::probe(ep, inv.defaults.timeout, inv.defaults.retries).await);
        }
    }
    host_evidence(name, Some(&resolution), port, |ep| states.get(&ep).cloned())
}

/// The update a zone's plan sends, as the verification compares it.
fn update_of(p: &ZonePlan) -> RrsetUpdate {
    RrsetUpdate {
        zone: p.zone.clone(),
        expected: p.before.clone(),
        deletes: p.deletes().cloned().collect(),
        adds: p.adds().cloned().collect(),
    }
}

/// Runs the runbook. Nothing is sent in a dry run.
pub async fn failover(inv: &Inventory, req: &Request, mode: Mode<'_>) -> Runbook {
    let applying = matches!(mode, Mode::Apply(_));
    let (f, over) = Failover::new(inv, &req.from, &req.to);
    let old_host = inv.host(&req.from);
    // The override publishes the new host; these are its port and account there.
    let (new_port, new_account) =
        over.host(&req.to).map(|h| (h.port, h.account.clone())).unwrap_or((inv.defaults.port, None));
    let old_port = old_host.map(|h| h.port).unwrap_or(inv.defaults.port);
    let mut rb = Runbook {
        from: req.from.clone(),
        to: req.to.clone(),
        applied: false,
        steps: vec![],
        left: vec![],
        cache_ttl: None,
        to_port: new_port,
        ok: false,
    };
    let seen = cycle::observe(&over).await;

    // 1. Checks, from what the observation saw.
    let (mut evidence, new_up) = seen_host(&seen.obs, &req.to, new_port);
    if inv.host(&req.to).is_none() {
        evidence.push(format!(
            "{} is not in the inventory: its record is published with port {new_port}, priority 0, weight 0",
            req.to
        ));
    }
    let new_ok = new_up == Some(true);
    rb.step(
        &format!("check that {} answers as a KMS host", req.to),
        if new_ok { StepResult::Ok } else { StepResult::Failed },
        evidence,
    );
    if let (Some(ad), Some(account)) = (&seen.obs.ad, new_account) {
        let (result, evidence) = ad_check(ad, &account, &f.zones);
        rb.step(
            &format!("check that {} ({account}) may update _vlmcs._tcp in Active Directory", req.to),
            result,
            evidence,
        );
    }
    let (mut evidence, old_up) = seen_host(&seen.obs, &req.from, old_port);
    let old_result = match old_up {
        Some(false) => {
            evidence.push(format!("{} does not answer: it cannot re-register its record", req.from));
            StepResult::Ok
        }
        _ => {
            evidence.push(format!(
                "{} may still run the KMS service: on it, run `slmgr /cdns` (stop publishing) and stop the service, or it re-registers its record within a day",
                req.from
            ));
            StepResult::Warning
        }
    };
    rb.step(&format!("check that {} is down", req.from), old_result, evidence);

    // 2. Plan, by the failover's planner, from what the servers serve now.
    let plan = crate::plan::failover::plan(&over, &seen.obs, &seen.findings, &f);
    let mut evidence = Vec::new();
    let mut plan_failed = false;
    for p in &plan.zones {
        for c in &p.changes {
            let sign = if c.action == Action::Delete { "-" } else { "+" };
            evidence.push(format!("zone {}: {sign} {}", p.zone, c.record));
        }
        for h in &p.held {
            let what = h.record.as_ref().map(|r| format!("{r}: ")).unwrap_or_default();
            evidence.push(format!("zone {}: {what}{}", p.zone, h.reason));
            plan_failed = true;
        }
        for o in &p.overrides {
            evidence.push(format!("zone {}: override: {o}", p.zone));
        }
        if p.changes.is_empty() && p.held.is_empty() && f.from_known {
            evidence.push(format!("zone {}: already done (no record of {}, {} published)", p.zone, req.from, req.to));
        }
        if !p.changes.is_empty() {
            match (p.policy, req.override_policy) {
                (Policy::Audit, false) => {
                    evidence.push(format!(
                        "zone {}: policy = \"audit\": it will not be written; pass --override-policy to include it",
                        p.zone
                    ));
                    plan_failed = true;
                }
                (Policy::Audit, true) => {
                    evidence.push(format!("zone {}: policy = \"audit\", written because of --override-policy", p.zone))
                }
                (Policy::Repair, _) => {}
            }
        }
    }
    // A host the inventory does not know is moved out only where it is published.
    if !f.from_known && plan.zones.iter().all(|p| p.changes.is_empty()) {
        evidence
            .push(format!("{} is not in the inventory and no zone's primary publishes it: check the name", req.from));
        plan_failed = true;
    }
    let nothing_to_send = plan.zones.iter().all(|p| p.changes.is_empty());
    rb.cache_ttl = plan.zones.iter().filter(|p| !p.changes.is_empty()).flat_map(|p| &p.before).map(|r| r.ttl).max();
    let plan_result = if plan_failed { StepResult::Failed } else { StepResult::Ok };
    rb.step(&format!("plan: {} out, {} in, one update per zone", req.from, req.to), plan_result, evidence);

    // 3. Apply, through the cycle's one carry-out.
    let may_apply = new_ok && !plan_failed;
    if !applying {
        rb.step("apply", StepResult::Skipped, vec!["dry run: nothing was sent; run again with --apply".into()]);
    } else if !may_apply {
        rb.step("apply", StepResult::Skipped, vec!["not applied: a check or the plan failed".into()]);
    }
    let outcomes = if applying && may_apply {
        let how = Carry::Failover { failover: &f, override_policy: req.override_policy };
        cycle::carry_out(&over, &seen, plan, mode, how).await
    } else {
        vec![]
    };
    if applying && may_apply {
        let mut evidence = Vec::new();
        let mut failed = false;
        for o in &outcomes {
            match &o.result {
                ZoneResult::NothingToDo => {}
                ZoneResult::Applied { id, .. } => {
                    evidence.push(format!("zone {}: applied (journal entry {id})", o.zone));
                    rb.applied = true;
                }
                ZoneResult::SettledByOther { .. } => {
                    evidence.push(format!("zone {}: another writer already made the change", o.zone))
                }
                ZoneResult::NotApplied | ZoneResult::WouldApply => {
                    let why: Vec<&str> = o.plan.held.iter().map(|h| h.reason.as_str()).collect();
                    evidence.push(format!("zone {}: not sent: {}", o.zone, why.join("; ")));
                    failed = true;
                }
                ZoneResult::Conflict { error, .. } | ZoneResult::Failed { error } => {
                    evidence.push(format!("zone {}: {error}", o.zone));
                    failed = true;
                }
            }
        }
        if nothing_to_send {
            evidence.push("nothing to send".into());
        }
        rb.step("apply", if failed { StepResult::Failed } else { StepResult::Ok }, evidence);
    }

    // 4. Verify: what the cycle saw on every server of every zone changed, the directory, and
    // the targets that remain.
    let applied: Vec<(Zone, RrsetUpdate)> = outcomes
        .iter()
        .filter(|o| matches!(o.result, ZoneResult::Applied { .. }))
        .filter_map(|o| over.zone(&o.zone).map(|z| (z.clone(), update_of(&o.plan))))
        .collect();
    let mut verified = true;
    if applying && may_apply {
        let mut evidence = Vec::new();
        let mut remaining: BTreeSet<(DnsName, u16)> = BTreeSet::new();
        for o in outcomes.iter().filter(|o| matches!(o.result, ZoneResult::Applied { .. })) {
            for check in &o.servers {
                let mark = if check.converged { "ok" } else { "NOT CONVERGED" };
                verified &= check.converged;
                evidence.push(format!("zone {} on {}: {mark}: {}", o.zone, check.server, check.answer));
            }
            remaining.extend(o.plan.after().iter().map(|r| (r.target.clone(), r.port)));
        }
        if let Some(ad) = &over.ad
            && !applied.is_empty()
        {
            let (ok, lines) = directory_holds(&over, ad, &applied).await;
            verified &= ok;
            evidence.extend(lines);
        }
        for (target, port) in remaining {
            let (lines, up) = probe_host(&over, &target, port).await;
            evidence.extend(lines);
            if up != Some(true) {
                evidence.push(format!("{target} remains published but does not answer as a KMS host: audit the zone"));
            }
        }
        rb.step(
            "verify on every authoritative server (and in the directory, with [ad])",
            if verified { StepResult::Ok } else { StepResult::Failed },
            evidence,
        );
    } else {
        rb.step(
            "verify on every authoritative server (and in the directory, with [ad])",
            StepResult::Skipped,
            vec!["nothing was applied".into()],
        );
    }

    // 5. What a person still has to do.
    rb.left.push(format!(
        "clients pinned to {from} with `slmgr /skms {from}` keep asking it: on them run `slmgr /ckms` (back to DNS discovery) or `slmgr /skms {to}:{new_port}`",
        from = req.from,
        to = req.to
    ));
    if old_host.is_none_or(|h| h.state != HostState::Decommissioned) {
        rb.left.push(format!(
            "mark {} as state = \"decommissioned\" in the inventory (`--update-inventory` does it), or the audit will report it missing",
            req.from
        ));
    }
    rb.ok = if applying {
        rb.applied && verified && !rb.steps.iter().any(|s| s.result == StepResult::Failed)
    } else {
        new_ok && !plan_failed
    };
    rb
}

/// Whether `account` may write the `_vlmcs._tcp` node of each zone: if not, the new host's own
/// registrations will be refused (event 12293) once it takes over.
fn ad_check(ad: &AdRead, account: &str, zones: &[DnsName]) -> (StepResult, Vec<String>) {
    use crate::audit::access::{computer_token, may_update};
    let view = match ad {
        AdRead::Read(v) => v,
        AdRead::Failed { error } => {
            return (StepResult::Warning, vec![format!("the directory could not be read: {error}")]);
        }
    };
    let acct = match view.accounts.get(account) {
        Some(Ok(a)) => a.clone(),
        Some(Err(e)) => return (StepResult::Warning, vec![e.to_string()]),
        None => return (StepResult::Warning, vec![format!("{account} was not looked up")]),
    };
    let token = computer_token(acct.sid, &acct.groups, false);
    let mut evidence = Vec::new();
    let mut blocked = false;
    for z in view.zones.iter().filter(|z| zones.contains(&z.zone)) {
        match z.node.as_ref().and_then(|n| n.sd.as_ref()) {
            None => evidence.push(format!("zone {}: no _vlmcs._tcp node yet: {account} may create it", z.zone)),
            Some(sd) if may_update(sd, &token).allowed() => {
                evidence.push(format!("zone {}: {account} may update _vlmcs._tcp", z.zone))
            }
            Some(sd) if may_update(sd, &token).verdict == crate::audit::access::Verdict::Unknown => {
                blocked = true;
                evidence.push(format!(
                    "zone {}: whether {account} may update _vlmcs._tcp is unknown: the DACL has ACEs kmsdns cannot evaluate (kmsdns --audit names them)",
                    z.zone
                ));
            }
            Some(_) => {
                blocked = true;
                evidence.push(format!(
                    "zone {}: {account} may NOT update _vlmcs._tcp: its own registrations would be refused (event 12293)",
                    z.zone
                ));
            }
        }
    }
    if blocked {
        evidence.push("fix it with `kmsdns repair --acl --apply` (grants [ad] kms_group write access; the host must be a member, with a new Kerberos ticket)".into());
        (StepResult::Warning, evidence)
    } else {
        (StepResult::Ok, evidence)
    }
}

/// Whether the directory stores the new RRset of each zone it holds (a DC serves what AD
/// stores, and other DCs get it by replication).
async fn directory_holds(
    inv: &Inventory,
    ad: &crate::inventory::AdSettings,
    zones: &[(Zone, RrsetUpdate)],
) -> (bool, Vec<String>) {
    use crate::observe::ad::observe_ad;
    let view = match observe_ad(inv, ad).await {
        AdRead::Read(v) => v,
        AdRead::Failed { error } => return (false, vec![format!("the directory could not be read: {error}")]),
    };
    let mut ok = true;
    let mut evidence = Vec::new();
    for (zone, update) in zones {
        let Some(z) = view.zones.iter().find(|z| z.zone == zone.name && z.dn.is_some()) else { continue };
        let stored = z.node.as_ref().filter(|n| !n.tombstoned).map(crate::audit::ad::srv_records).unwrap_or_default();
        let same = update.visible_in(&stored);
        ok &= same;
        let targets: Vec<String> = stored.iter().map(|r| r.target.to_string()).collect();
        let mark = if same { "ok" } else { "NOT YET" };
        evidence.push(format!("zone {} in the directory ({}): {mark}: [{}]", zone.name, view.dc, targets.join(", ")));
    }
    (ok, evidence)
}

/// Marks `from` decommissioned in the inventory file, and adds `to` as an active host of the
/// same zones when the inventory does not know it, keeping the file's comments and layout.
pub fn update_inventory(path: &Path, from: &DnsName, to: &DnsName, zones: &[DnsName]) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e| format!("{}: {e}", path.display()))?;
    let mut done = Vec::new();
    let hosts = doc
        .get_mut("host")
        .and_then(|h| h.as_array_of_tables_mut())
        .ok_or_else(|| format!("{}: no [[host]] entries", path.display()))?;
    let same = |t: &toml_edit::Table, n: &DnsName| {
        t.get("name").and_then(|v| v.as_str()).and_then(|s| DnsName::parse(s).ok()).as_ref() == Some(n)
    };
    let found = hosts.iter().position(|t| same(t, from));
    match found {
        Some(i) => {
            if let Some(t) = hosts.get_mut(i) {
                t["state"] = toml_edit::value("decommissioned");
            }
            done.push(format!("{from}: state = \"decommissioned\""));
        }
        None => {
            let mut t = toml_edit::Table::new();
            t["name"] = toml_edit::value(from.to_string());
            t["zones"] = toml_edit::value(toml_edit::Array::new());
            t["state"] = toml_edit::value("decommissioned");
            hosts.push(t);
            done.push(format!("{from}: added, state = \"decommissioned\""));
        }
    }
    let known = hosts.iter().any(|t| same(t, to));
    if !known {
        let mut t = toml_edit::Table::new();
        t["name"] = toml_edit::value(to.to_string());
        let mut list = toml_edit::Array::new();
        for z in zones {
            list.push(z.to_string());
        }
        t["zones"] = toml_edit::value(list);
        t["state"] = toml_edit::value("active");
        hosts.push(t);
        done.push(format!("{to}: added, state = \"active\""));
    }
    let new_text = doc.to_string();
    // The result must still be a valid inventory before it replaces the file.
    Inventory::from_toml(&new_text).map_err(|p| format!("the edited inventory would not be valid: {p:?}"))?;
    let tmp = path.with_extension("toml.kmsdns-new");
    std::fs::write(&tmp, new_text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(done)
}
