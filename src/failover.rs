//! `kmsdns failover`: the runbook after a KMS host dies, built from the pieces the audit and
//! the repair use, each step with its evidence and result.
//!
//! 1. Check the new host answers as a KMS host, and whether the old one still does.
//! 2. Plan, in every zone of the old host: the new host's record added when absent, the old
//!    host's deleted; one update per zone, asserting the RRset the primary serves now.
//! 3. Apply, through the journal (only with `--apply`).
//! 4. Verify on every authoritative server, and probe every target that remains.
//! 5. What is left for a person.
//!
//! A failover is a decision the admin has made, so the audit's rails that hold a zone back
//! (an unreadable secondary, `max_deletes`) do not apply; the prerequisite still does, so a
//! concurrent change is never overwritten, and the verification says which server lags.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;

use serde::Serialize;

use crate::apply::{self, CommitError, Committed, Mode, RrsetUpdate};
use crate::inventory::{HostState, Inventory, Zone};
use crate::model::{ProbeState, Resolution, SrvAnswer, SrvRecord};
use crate::name::DnsName;
use crate::observe::{self, DnsReader};
use crate::repair::{await_propagation, resolve_primary};

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

/// One zone's failover change.
#[derive(Debug, Clone)]
struct ZoneChange {
    zone: Zone,
    server: SocketAddr,
    update: RrsetUpdate,
}

impl Runbook {
    fn step(&mut self, title: &str, result: StepResult, evidence: Vec<String>) {
        self.steps.push(Step { title: title.into(), result, evidence });
    }
}

/// Probes `name` on `port` at every address; returns the evidence lines and whether any
/// address answered as KMS (None when the name could not be resolved).
async fn probe_host(inv: &Inventory, name: &DnsName, port: u16) -> (Vec<String>, Option<bool>) {
    match crate::repair::addresses_of(inv, name).await {
        Resolution::Addresses { addresses, incomplete } => {
            let mut lines = Vec::new();
            let mut up = false;
            for a in addresses {
                let ep = SocketAddr::new(a, port);
                let state = observe::probe::probe(ep, inv.defaults.timeout, inv.defaults.retries).await;
                up |= state == ProbeState::KmsUp;
                let detail = match &state {
                    ProbeState::KmsUp => String::new(),
                    ProbeState::NotKms(d) | ProbeState::Down(d) => format!(" ({d})"),
                };
                lines.push(format!("{name} {ep}: {}{detail}", state.code()));
            }
            match incomplete {
                // Addresses a server could not tell us may be the live ones.
                Some(error) if !up => {
                    lines.push(format!("{name}: some of its addresses could not be read: {error}"));
                    (lines, None)
                }
                _ => (lines, Some(up)),
            }
        }
        Resolution::NoAddress => (vec![format!("{name} has no A or AAAA record")], Some(false)),
        Resolution::Failed { error } => (vec![format!("{name}: address lookup failed: {error}")], None),
    }
}

/// Runs the runbook. Nothing is sent in a dry run.
pub async fn failover(inv: &Inventory, req: &Request, mode: Mode<'_>) -> Runbook {
    let applying = matches!(mode, Mode::Apply(_));
    let mut rb = Runbook {
        from: req.from.clone(),
        to: req.to.clone(),
        applied: false,
        steps: vec![],
        left: vec![],
        cache_ttl: None,
        to_port: inv.defaults.port,
        ok: false,
    };
    let reader = DnsReader::new(inv.defaults.timeout, inv.defaults.retries);
    let new_host = inv.host(&req.to);
    let old_host = inv.host(&req.from);
    let new_port = new_host.map(|h| h.port).unwrap_or(inv.defaults.port);
    let old_port = old_host.map(|h| h.port).unwrap_or(inv.defaults.port);
    rb.to_port = new_port;

    // 1. Checks.
    let (mut evidence, new_up) = probe_host(inv, &req.to, new_port).await;
    if new_host.is_none() {
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

    if let (Some(ad), Some(account)) = (&inv.ad, new_host.and_then(|h| h.account.clone())) {
        let zones: Vec<DnsName> = match old_host {
            Some(h) if !h.zones.is_empty() => h.zones.clone(),
            _ => inv.zones.iter().map(|z| z.name.clone()).collect(),
        };
        let (result, evidence) = ad_check(inv, ad, &account, &zones).await;
        rb.step(
            &format!("check that {} ({account}) may update _vlmcs._tcp in Active Directory", req.to),
            result,
            evidence,
        );
    }

    let (mut evidence, old_up) = probe_host(inv, &req.from, old_port).await;
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

    // 2. Plan, from what each zone's primary serves now.
    let zones: Vec<&Zone> = match old_host {
        Some(h) if !h.zones.is_empty() => inv.zones.iter().filter(|z| h.zones.contains(&z.name)).collect(),
        _ => inv.zones.iter().collect(),
    };
    let new_record = SrvRecord {
        target: req.to.clone(),
        port: new_port,
        priority: new_host.map(|h| h.priority).unwrap_or(0),
        weight: new_host.map(|h| h.weight).unwrap_or(0),
        ttl: inv.defaults.ttl,
    };
    let mut changes: Vec<ZoneChange> = Vec::new();
    let mut evidence = Vec::new();
    let mut plan_failed = false;
    for zone in zones {
        let server = match primary_of(inv, zone).await {
            Ok(s) => s,
            Err(e) => {
                evidence.push(e);
                plan_failed = true;
                continue;
            }
        };
        match plan_zone(&reader, zone, server, &req.from, new_record.clone()).await {
            Ok(Some(c)) => {
                for d in &c.update.deletes {
                    evidence.push(format!("zone {}: - {d}", zone.name));
                }
                for a in &c.update.adds {
                    evidence.push(format!("zone {}: + {a}", zone.name));
                }
                changes.push(c);
            }
            Ok(None) => evidence
                .push(format!("zone {}: already done (no record of {}, {} published)", zone.name, req.from, req.to)),
            Err(e) => {
                evidence.push(format!("zone {}: {e}", zone.name));
                plan_failed = true;
            }
        }
    }
    // A host the inventory does not know is moved out only where it is published: a mistyped
    // --from must not publish the new host in every zone and call that a failover.
    if old_host.is_none() {
        changes.retain(|c| !c.update.deletes.is_empty());
        if changes.is_empty() {
            evidence.push(format!(
                "{} is not in the inventory and no zone's primary publishes it: check the name",
                req.from
            ));
            plan_failed = true;
        }
    }
    for c in &changes {
        match (c.zone.policy, req.override_policy) {
            (crate::inventory::Policy::Audit, false) => {
                evidence.push(format!(
                    "zone {}: policy = \"audit\": it will not be written; pass --override-policy to include it",
                    c.zone.name
                ));
                plan_failed = true;
            }
            (crate::inventory::Policy::Audit, true) => {
                evidence.push(format!("zone {}: policy = \"audit\", written because of --override-policy", c.zone.name))
            }
            (crate::inventory::Policy::Repair, _) => {}
        }
    }
    rb.cache_ttl = changes.iter().flat_map(|c| &c.update.expected).map(|r| r.ttl).max();
    let plan_result = if plan_failed { StepResult::Failed } else { StepResult::Ok };
    rb.step(&format!("plan: {} out, {} in, one update per zone", req.from, req.to), plan_result, evidence);

    // 3. Apply.
    let may_apply = new_ok && !plan_failed;
    let mut applied_zones: Vec<(Zone, RrsetUpdate)> = Vec::new();
    let journal = match mode {
        Mode::Apply(j) => Some(j),
        Mode::DryRun => None,
    };
    match (journal, may_apply) {
        (None, _) => {
            rb.step("apply", StepResult::Skipped, vec!["dry run: nothing was sent; run again with --apply".into()])
        }
        (Some(_), false) => {
            rb.step("apply", StepResult::Skipped, vec!["not applied: a check or the plan failed".into()])
        }
        (Some(_), true) => {
            let mut evidence = Vec::new();
            let mut failed = false;
            for c in &changes {
                match apply_zone(inv, c, mode, req, new_record.clone(), &reader).await {
                    Ok((id, update)) => {
                        evidence.push(format!("zone {}: applied to {} (journal entry {id})", c.zone.name, c.server));
                        applied_zones.push((c.zone.clone(), update));
                    }
                    Err(e) => {
                        evidence.push(format!("zone {}: {e}", c.zone.name));
                        failed = true;
                    }
                }
            }
            if changes.is_empty() {
                evidence.push("nothing to send".into());
            }
            rb.applied = !applied_zones.is_empty();
            rb.step("apply", if failed { StepResult::Failed } else { StepResult::Ok }, evidence);
        }
    }

    // 4. Verify every server of every zone changed, then the targets that remain.
    let mut verified = true;
    if applying && may_apply {
        let mut evidence = Vec::new();
        let mut remaining: BTreeSet<(DnsName, u16)> = BTreeSet::new();
        for (zone, update) in &applied_zones {
            let after = update.after();
            for check in await_propagation(inv, zone, update, None).await.servers {
                let mark = if check.converged { "ok" } else { "NOT CONVERGED" };
                verified &= check.converged;
                evidence.push(format!("zone {} on {}: {mark}: {}", zone.name, check.server, check.answer));
            }
            remaining.extend(after.iter().map(|r| (r.target.clone(), r.port)));
        }
        if let Some(ad) = &inv.ad
            && !applied_zones.is_empty()
        {
            let (ok, lines) = directory_holds(inv, ad, &applied_zones).await;
            verified &= ok;
            evidence.extend(lines);
        }
        for (target, port) in remaining {
            let (lines, up) = probe_host(inv, &target, port).await;
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
async fn ad_check(
    inv: &Inventory,
    ad: &crate::inventory::AdSettings,
    account: &str,
    zones: &[DnsName],
) -> (StepResult, Vec<String>) {
    use crate::audit::access::{computer_token, may_update};
    use crate::model::ad::AdRead;
    use crate::observe::ad::observe_ad;
    let view = match observe_ad(inv, ad).await {
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
    use crate::model::ad::AdRead;
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

/// Where the zone's updates go: `primary =`, or the SOA MNAME one of its servers gives.
async fn primary_of(inv: &Inventory, zone: &Zone) -> Result<SocketAddr, String> {
    let mname = if zone.primary.is_none() { crate::repair::read_mname(inv, zone).await } else { None };
    resolve_primary(inv, zone, mname).await
}

/// The change for one zone, from the RRset its primary serves; None when nothing is to do.
async fn plan_zone(
    reader: &DnsReader,
    zone: &Zone,
    server: SocketAddr,
    from: &DnsName,
    add: SrvRecord,
) -> Result<Option<ZoneChange>, String> {
    let (answer, _, _) = reader.zone_view(server, &zone.name).await;
    let before: Vec<SrvRecord> = match answer {
        SrvAnswer::Failed { error } => return Err(format!("the primary {server} could not be read: {error}")),
        other => other.known_records().map(<[SrvRecord]>::to_vec).unwrap_or_default(),
    };
    let deletes: Vec<SrvRecord> = before.iter().filter(|r| &r.target == from).cloned().collect();
    let adds: Vec<SrvRecord> = if before.iter().any(|r| r.target == add.target) { vec![] } else { vec![add] };
    if deletes.is_empty() && adds.is_empty() {
        return Ok(None);
    }
    Ok(Some(ZoneChange {
        zone: zone.clone(),
        server,
        update: RrsetUpdate { zone: zone.name.clone(), expected: before, deletes, adds },
    }))
}

/// Applies one zone's change; on a prerequisite conflict reads the primary again and retries
/// (twice at most). Returns the journal entry and the RRset the servers should now serve.
async fn apply_zone(
    inv: &Inventory,
    c: &ZoneChange,
    mode: Mode<'_>,
    req: &Request,
    add: SrvRecord,
    reader: &DnsReader,
) -> Result<(u64, RrsetUpdate), String> {
    let mname = if c.zone.gss_tsig { crate::repair::read_mname(inv, &c.zone).await } else { None };
    let auth = crate::repair::auth_for(inv, &c.zone, mname.as_ref())?;
    let timeout = observe::worst_case(inv.defaults.timeout, inv.defaults.retries);
    let mut change = c.clone();
    for attempt in 0..=crate::repair::CONFLICT_RETRIES {
        let reasons = vec![format!("failover from {} to {}", req.from, add.target)];
        let authority = apply::Authority::over(c.zone.policy, req.override_policy);
        match apply::commit(mode, authority, change.server, &auth, &change.update, reasons, None, timeout).await {
            Ok(Committed::Applied { id }) => return Ok((id, change.update)),
            Ok(Committed::NotSent) => return Err("dry run".into()),
            Err(CommitError::Update { source, .. })
                if source.is_conflict() && attempt < crate::repair::CONFLICT_RETRIES =>
            {
                match plan_zone(reader, &c.zone, c.server, &req.from, add.clone()).await? {
                    Some(fresh) => change = fresh,
                    None => return Err("another writer already made the change".into()),
                }
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("the RRset kept changing under the update; nothing was overwritten".into())
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
