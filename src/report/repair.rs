//! What `kmsdns repair`, `kmsdns apply FILE` and `kmsdns repair --acl` did, and the plan as
//! a person reads it.

use std::fmt::Write as _;

use serde::Serialize;

use crate::audit::Finding;

use super::push_wrapped;

/// The result of `kmsdns repair` or `kmsdns apply`, as JSON (schema 1).
#[derive(Debug, Serialize)]
pub struct RepairReport<'a> {
    pub schema: u32,
    pub generated: String,
    pub applied: bool,
    pub findings: &'a [Finding],
    pub zones: &'a [crate::cycle::ZoneOutcome],
    pub exit_code: i32,
}

/// The exit code of a repair: 0 done (or nothing to do), 1 something held back or not
/// applied by policy, 2 an update failed, conflicted or did not reach every server, or none
/// of a zone's servers could be read.
pub fn repair_exit_code(outcomes: &[crate::cycle::ZoneOutcome]) -> i32 {
    let severity = |o: &crate::cycle::ZoneOutcome| {
        if o.plan.unread_everywhere() { 2 } else { i32::from(o.result.severity(&o.plan)) }
    };
    outcomes.iter().map(severity).max().unwrap_or(0)
}

/// One zone's plan for a person: the RRset now, each change with its reason, what was held.
pub fn zone_plan_text(out: &mut String, p: &crate::plan::ZonePlan, width: usize) {
    use crate::inventory::Policy;
    use crate::plan::{Action, Holding};
    let policy = match p.policy {
        Policy::Audit => "audit",
        Policy::Repair => "repair",
    };
    let _ = writeln!(out, "zone {} (policy {policy})", p.zone);
    // A zone held for its servers has no `before`: say what each holds, and which is unknown.
    for s in &p.servers {
        let head = format!("  now on {}: ", s.server);
        match &s.holds {
            Holding::Records { records } if records.is_empty() => push_wrapped(out, &head, "no SRV records", width),
            Holding::Records { records } => {
                for r in records {
                    let _ = writeln!(out, "{head}{r}");
                }
            }
            Holding::Unknown { why } => push_wrapped(out, &head, &format!("unreadable: {why}"), width),
        }
    }
    if p.servers.is_empty() && p.before.is_empty() {
        let _ = writeln!(out, "  now: no SRV records");
    }
    for r in &p.before {
        let _ = writeln!(out, "  now: {r}");
    }
    for c in &p.changes {
        let sign = match c.action {
            Action::Delete => "-",
            Action::Add => "+",
        };
        let _ = writeln!(out, "  {sign} {}   ({})", c.record, c.code.as_str());
    }
    for h in &p.held {
        let what = h.record.as_ref().map(|r| format!("{r}: ")).unwrap_or_default();
        push_wrapped(out, "  held: ", &format!("{what}{}", h.reason), width);
    }
    for o in &p.overrides {
        push_wrapped(out, "  override: ", o, width);
    }
    if p.changes.is_empty() && p.held.is_empty() {
        let _ = writeln!(out, "  no change needed");
    }
}

/// What became of each zone, for a person.
pub fn repair_text(outcomes: &[crate::cycle::ZoneOutcome], width: usize) -> String {
    use crate::cycle::ZoneResult;
    let mut out = String::new();
    for o in outcomes {
        zone_plan_text(&mut out, &o.plan, width);
        let result = match &o.result {
            ZoneResult::NothingToDo => None,
            ZoneResult::NotApplied => Some("not applied".to_string()),
            ZoneResult::WouldApply => Some("would apply: run `kmsdns repair --apply` to send this update".into()),
            ZoneResult::Applied { id, attempts, lagging } if lagging.is_empty() => {
                let retried = if *attempts > 1 {
                    format!(
                        " on attempt {attempts}: the RRset had changed since it was observed, so it was planned again from what is there"
                    )
                } else {
                    String::new()
                };
                let seen = if o.servers.iter().any(|s| s.moved_on) {
                    "the change is visible on every server, in an RRset another writer has changed since"
                } else {
                    "every server serves the new RRset"
                };
                Some(format!("applied (journal entry {id}){retried}; {seen}"))
            }
            ZoneResult::Applied { id, lagging, .. } => Some(format!(
                "applied (journal entry {id}), but {} did not serve the new RRset in time (server-divergence)",
                lagging.join(", ")
            )),
            ZoneResult::SettledByOther { attempts } => {
                Some(format!("another writer changed the zone; after {attempts} attempt(s) nothing is left to do"))
            }
            ZoneResult::Conflict { error, .. } => Some(format!("CONFLICT: {error}")),
            ZoneResult::Failed { error } => Some(format!("FAILED: {error}")),
        };
        if let Some(r) = result {
            push_wrapped(&mut out, "  result: ", &r, width);
        }
        for s in &o.servers {
            let applied = matches!(o.result, ZoneResult::Applied { .. });
            let mark = match (s.converged, s.moved_on, applied) {
                (true, false, _) => "ok",
                (true, true, _) => "ok, moved on",
                (false, _, true) => "LAGGING",
                // The change was not made: nobody is behind.
                (false, _, false) => "unchanged",
            };
            push_wrapped(&mut out, &format!("    {} {mark}: ", s.server), &s.answer, width);
        }
        out.push('\n');
    }
    out
}

/// What `kmsdns repair --acl` did, for a person.
pub fn acl_text(r: &crate::cycle::AclRepair, width: usize) -> String {
    use crate::cycle::AclResult;
    let mut out = String::new();
    if let Some(e) = &r.error {
        push_wrapped(&mut out, "cannot repair ACLs: ", e, width);
        return out;
    }
    if r.zones.is_empty() {
        out.push_str("no _vlmcs._tcp node blocks an active KMS host: nothing to change\n");
    }
    for z in &r.zones {
        let _ = writeln!(out, "zone {}: {}", z.zone, z.dn);
        let hosts: Vec<String> = z.blocked.iter().map(|h| h.to_string()).collect();
        push_wrapped(&mut out, "  blocked: ", &hosts.join(", "), width);
        let group = r.group.as_deref().unwrap_or("?");
        let _ = writeln!(
            out,
            "  + ACE {} (group '{group}': write the node's records, and the rights Samba's BIND9_DLZ module checks)",
            z.ace
        );
        let result = match &z.result {
            AclResult::WouldApply => "would apply: run `kmsdns repair --acl --apply` to write it".to_string(),
            AclResult::NotApplied { reason } => format!("not applied: {reason}"),
            AclResult::Applied { id, verified: true } => {
                format!("applied (journal entry {id}); read back: members of '{group}' may now update the record")
            }
            AclResult::Applied { id, verified: false } => {
                format!("applied (journal entry {id}), but reading it back did not show the grant: audit again")
            }
            AclResult::Failed { error } => format!("FAILED: {error}"),
        };
        push_wrapped(&mut out, "  result: ", &result, width);
    }
    for a in &r.not_members {
        let group = r.group.as_deref().unwrap_or("the KMS group");
        push_wrapped(
            &mut out,
            "note: ",
            &format!(
                "{a} is not a member of '{group}': add it, then the host needs a new Kerberos ticket (restart it, or `klist -li 0x3e7 purge` on it) before its updates carry the group"
            ),
            width,
        );
    }
    out
}

/// The exit code of `repair --acl`: 0 done or nothing to do, 1 something left for a person,
/// 2 a write failed or nothing could be done.
pub fn acl_exit_code(r: &crate::cycle::AclRepair) -> i32 {
    use crate::cycle::AclResult;
    if r.error.is_some()
        || r.zones
            .iter()
            .any(|z| matches!(z.result, AclResult::Failed { .. } | AclResult::Applied { verified: false, .. }))
    {
        2
    } else if !r.not_members.is_empty() || r.zones.iter().any(|z| matches!(z.result, AclResult::NotApplied { .. })) {
        1
    } else {
        0
    }
}
