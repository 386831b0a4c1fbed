//! The audit as a person reads it (text) and as a program reads it (JSON), and its exit code.
//!
//! Exit codes follow the monitoring-plugin convention (Nagios, Icinga, Zabbix): 0 nothing
//! above info, 1 warnings, 2 critical, 3 the audit could not run.
//!
//! The JSON document is versioned (`"schema": 1`); fields are only ever added within a
//! version. README.md shows an example.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;

use serde::Serialize;

use crate::audit::{Finding, Severity};
use crate::inventory::Inventory;
use crate::name::DnsName;
use crate::observe::{Observation, ProbeState, ReadError, Resolution, SrvAnswer, SrvRecord};

pub mod client;
pub mod nagios;

pub const SCHEMA: u32 = 1;
/// The audit could not run (bad config, no runtime): "unknown" to a monitoring system.
pub const EXIT_UNKNOWN: i32 = 3;

/// The exit code for a set of findings.
pub fn exit_code(findings: &[Finding]) -> i32 {
    match findings.iter().map(|f| f.severity).max() {
        Some(Severity::Critical) => 2,
        Some(Severity::Warning) => 1,
        _ => 0,
    }
}

/// Schema 1 of `kmsdns audit --format json`.
#[derive(Debug, Serialize)]
pub struct AuditReport {
    pub schema: u32,
    /// RFC 3339, UTC, when the observation ended.
    pub generated: String,
    pub zones: Vec<ZoneReport>,
    pub targets: Vec<TargetReport>,
    pub findings: Vec<Finding>,
    pub summary: Summary,
}

#[derive(Debug, Serialize)]
pub struct ZoneReport {
    pub zone: DnsName,
    pub servers: Vec<ServerReport>,
}

#[derive(Debug, Serialize)]
pub struct ServerReport {
    pub server: String,
    /// `records`, `no-data`, `nxdomain` or `failed`.
    pub outcome: &'static str,
    pub records: Vec<SrvRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ReadError>,
    pub serial: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial_error: Option<ReadError>,
}

#[derive(Debug, Serialize)]
pub struct TargetReport {
    pub name: DnsName,
    /// `addresses`, `no-address` or `failed`.
    pub resolution: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ReadError>,
    pub probes: Vec<ProbeReport>,
}

#[derive(Debug, Serialize)]
pub struct ProbeReport {
    pub endpoint: SocketAddr,
    /// `kms-up`, `not-kms` or `down`; `unprobed` when no probe was made for this port.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub critical: usize,
    pub warning: usize,
    pub info: usize,
    pub zones: usize,
    pub servers: usize,
    pub servers_unreadable: usize,
    pub targets: usize,
    pub exit_code: i32,
}

impl AuditReport {
    pub fn new(inv: &Inventory, obs: &Observation, findings: Vec<Finding>, generated: String) -> AuditReport {
        let zones = obs
            .zones
            .iter()
            .map(|z| ZoneReport {
                zone: z.zone.clone(),
                servers: z
                    .servers
                    .iter()
                    .map(|s| {
                        let (outcome, records, error) = match &s.srv {
                            SrvAnswer::Records { records } => ("records", records.clone(), None),
                            SrvAnswer::NoData => ("no-data", vec![], None),
                            SrvAnswer::NxDomain => ("nxdomain", vec![], None),
                            SrvAnswer::Failed { error } => ("failed", vec![], Some(error.clone())),
                        };
                        ServerReport {
                            server: s.server.to_string(),
                            outcome,
                            records,
                            error,
                            serial: s.serial.as_ref().ok().copied(),
                            serial_error: s.serial.as_ref().err().cloned(),
                        }
                    })
                    .collect(),
            })
            .collect();
        let targets = target_reports(inv, obs);
        let count = |sev| findings.iter().filter(|f| f.severity == sev).count();
        let servers: Vec<_> = obs.zones.iter().flat_map(|z| &z.servers).collect();
        let summary = Summary {
            critical: count(Severity::Critical),
            warning: count(Severity::Warning),
            info: count(Severity::Info),
            zones: obs.zones.len(),
            servers: servers.len(),
            servers_unreadable: servers.iter().filter(|s| s.srv.known_records().is_none()).count(),
            targets: targets.len(),
            exit_code: exit_code(&findings),
        };
        AuditReport { schema: SCHEMA, generated, zones, targets, findings, summary }
    }

    pub fn to_json(&self) -> String {
        // Serialising these plain structs cannot fail; an empty object would still be valid JSON.
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".into())
    }

    /// The same JSON as [`AuditReport::to_json`], written as it is made: at 10,000 zones the
    /// text is 15 MB, which need not be held in memory beside the report.
    pub fn write_json(&self, out: impl std::io::Write) -> std::io::Result<()> {
        use std::io::Write as _;
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
        serde_json::to_writer_pretty(&mut out, self).map_err(std::io::Error::other)?;
        out.write_all(b"\n")?;
        out.flush()
    }

    /// The report for a person, at most `width` columns, ANSI colour when `colour`.
    pub fn to_text(&self, width: usize, colour: bool) -> String {
        let paint = |s: &str, code: &str| {
            if colour { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_string() }
        };
        let mut out = String::new();
        for z in &self.zones {
            let _ = writeln!(out, "{}", paint(&format!("zone {}", z.zone), "1"));
            for s in &z.servers {
                let serial = s.serial.map(|n| format!("serial {n}")).unwrap_or_else(|| "serial ?".into());
                let head = format!("  server {}  {serial}  ", s.server);
                match (s.outcome, &s.error) {
                    ("failed", Some(e)) => {
                        push_wrapped(&mut out, &head, &paint(&format!("unreadable: {e}"), "31"), width)
                    }
                    ("records", _) => {
                        let _ = writeln!(out, "{}", head.trim_end());
                        for r in &s.records {
                            let _ = writeln!(out, "    {r}");
                        }
                    }
                    ("nxdomain", _) => push_wrapped(&mut out, &head, "NXDOMAIN (no _vlmcs._tcp)", width),
                    _ => push_wrapped(&mut out, &head, "no SRV records", width),
                }
            }
            let zone_targets: Vec<&TargetReport> = self
                .targets
                .iter()
                .filter(|t| z.servers.iter().flat_map(|s| &s.records).any(|r| r.target == t.name))
                .collect();
            for t in zone_targets {
                let states = if t.probes.is_empty() {
                    t.error.as_ref().map(|e| format!("lookup failed: {e}")).unwrap_or_else(|| "no A/AAAA".into())
                } else {
                    t.probes.iter().map(|p| format!("{} {}", p.endpoint, p.state)).collect::<Vec<_>>().join(", ")
                };
                push_wrapped(&mut out, &format!("  target {}  ", t.name), &states, width);
            }
            let mut any = false;
            for f in self.findings.iter().filter(|f| f.zone == z.zone) {
                any = true;
                let (label, code) = match f.severity {
                    Severity::Critical => ("CRITICAL", "1;31"),
                    Severity::Warning => ("WARNING ", "33"),
                    Severity::Info => ("INFO    ", "36"),
                };
                let server = f.server.as_ref().map(|s| format!(" [{s}]")).unwrap_or_default();
                let head = format!("  {} {}{server}: ", paint(label, code), f.code.as_str());
                let visible = 2 + label.len() + 1 + f.code.as_str().len() + server.len() + 2;
                push_wrapped_visible(&mut out, &head, visible, &f.message, width);
                push_wrapped(&mut out, "      fix: ", &f.fix, width);
            }
            if !any {
                let _ = writeln!(out, "  {}", paint("ok: no findings", "32"));
            }
            out.push('\n');
        }
        let s = &self.summary;
        let _ = writeln!(
            out,
            "{} critical, {} warning, {} info in {} zone(s), {} server(s) ({} unreadable), {} target(s); exit {}",
            s.critical, s.warning, s.info, s.zones, s.servers, s.servers_unreadable, s.targets, s.exit_code
        );
        out
    }
}

fn target_reports(inv: &Inventory, obs: &Observation) -> Vec<TargetReport> {
    // Ports each name is probed on: those of its SRV records and its inventory port.
    let mut ports: BTreeMap<&DnsName, Vec<u16>> = BTreeMap::new();
    for r in obs.zones.iter().flat_map(|z| &z.servers).filter_map(|s| s.srv.known_records()).flatten() {
        ports.entry(&r.target).or_default().push(r.port);
    }
    for h in &inv.hosts {
        if obs.names.contains_key(&h.name) {
            ports.entry(&h.name).or_default().push(h.port);
        }
    }
    obs.names
        .iter()
        .map(|(name, res)| {
            let mut name_ports = ports.get(name).cloned().unwrap_or_default();
            name_ports.sort();
            name_ports.dedup();
            let (resolution, error, probes) = match res {
                Resolution::Addresses { addresses, .. } => {
                    let probes = addresses
                        .iter()
                        .flat_map(|a| name_ports.iter().map(move |p| SocketAddr::new(*a, *p)))
                        .map(|ep| {
                            let (state, detail) = match obs.probes.get(&ep) {
                                Some(ProbeState::KmsUp) => ("kms-up", None),
                                Some(ProbeState::NotKms(d)) => ("not-kms", Some(d.clone())),
                                Some(ProbeState::Down(d)) => ("down", Some(d.clone())),
                                None => ("unprobed", None),
                            };
                            ProbeReport { endpoint: ep, state, detail }
                        })
                        .collect();
                    ("addresses", None, probes)
                }
                Resolution::NoAddress => ("no-address", None, vec![]),
                Resolution::Failed { error } => ("failed", Some(error.clone()), vec![]),
            };
            TargetReport { name: name.clone(), resolution, error, probes }
        })
        .collect()
}

fn push_wrapped(out: &mut String, head: &str, body: &str, width: usize) {
    push_wrapped_visible(out, head, head.chars().count(), body, width);
}

/// Writes `head` then `body` word-wrapped to `width` columns, continuation lines indented to
/// the body's column (capped, so a long head still leaves room for text). `visible` is the
/// head's width on screen, which differs from its length when it holds colour codes.
fn push_wrapped_visible(out: &mut String, head: &str, visible: usize, body: &str, width: usize) {
    let indent = visible.min(width / 3).max(4);
    out.push_str(head);
    let mut col = visible;
    let mut first = true;
    for word in body.split_whitespace() {
        let len = word.chars().count();
        if !first && col + 1 + len > width {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            col = indent;
            first = true;
        }
        if !first {
            out.push(' ');
            col += 1;
        }
        out.push_str(word);
        col += len;
        first = false;
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Code;

    fn finding(code: Code) -> Finding {
        Finding {
            code,
            severity: code.severity(),
            zone: DnsName::parse("corp.test").unwrap(),
            server: None,
            record: None,
            target: None,
            message: "m".into(),
            fix: "f".into(),
        }
    }

    #[test]
    fn exit_codes_follow_the_plugin_convention() {
        assert_eq!(exit_code(&[]), 0);
        assert_eq!(exit_code(&[finding(Code::RecordDrift)]), 1);
        assert_eq!(exit_code(&[finding(Code::RecordDrift), finding(Code::StaleDead)]), 2);
    }

    #[test]
    fn written_json_is_the_same_text_as_to_json() {
        let w = crate::testkit::World::new(&["kms1.corp.test"]);
        let report = AuditReport::new(&w.inv, &w.obs, w.findings(), "2026-12-02T00:00:00Z".into());
        let mut written = Vec::new();
        report.write_json(&mut written).unwrap();
        assert_eq!(String::from_utf8(written).unwrap(), report.to_json() + "\n");
    }

    fn held_outcome(answers: [crate::observe::SrvAnswer; 2]) -> crate::repair::ZoneOutcome {
        let [a, b] = answers;
        let w = crate::testkit::World::new(&["kms1.corp.test"]).server(0, a).server(1, b);
        let plan = crate::plan::plan(&w.inv, &w.obs, &w.findings()).zones.remove(0);
        let result = crate::repair::ZoneResult::NothingToDo;
        crate::repair::ZoneOutcome { zone: plan.zone.clone(), plan, result, servers: vec![] }
    }

    #[test]
    fn a_zone_held_for_an_unreadable_server_shows_what_each_server_holds() {
        use crate::testkit::{failed, records};
        let o = held_outcome([records(&["kms1.corp.test"]), failed(ReadError::Timeout)]);
        let text = repair_text(std::slice::from_ref(&o), 100);
        assert!(text.contains("  now on 127.0.0.1:5300: SRV 0 0 1688 kms1.corp.test.\n"), "{text}");
        assert!(text.contains("  now on 127.0.0.1:5301: unreadable: no answer within the timeout"), "{text}");
        assert!(!text.contains("no SRV records"), "{text}");
        assert_eq!(repair_exit_code(&[o]), 1);

        // An empty answer is known, and said; only the unreadable server is unknown.
        let o = held_outcome([records(&[]), failed(ReadError::Refused)]);
        let text = repair_text(std::slice::from_ref(&o), 100);
        assert!(text.contains("  now on 127.0.0.1:5300: no SRV records\n"), "{text}");
        assert!(text.contains("  now on 127.0.0.1:5301: unreadable: the server refused"), "{text}");

        let o = held_outcome([failed(ReadError::Timeout), failed(ReadError::ServFail)]);
        let text = repair_text(std::slice::from_ref(&o), 100);
        assert!(!text.contains("no SRV records"), "{text}");
        assert_eq!(repair_exit_code(&[o]), 2, "{text}");
    }

    #[test]
    fn the_failover_ends_with_the_count_the_pinned_clients_and_the_ttl() {
        use crate::failover::Runbook;
        let mut rb = Runbook {
            from: DnsName::parse("kms1.corp.test").unwrap(),
            to: DnsName::parse("kms2.corp.test").unwrap(),
            applied: true,
            steps: vec![],
            left: vec![],
            cache_ttl: Some(3600),
            to_port: 1688,
            ok: true,
        };
        let text = runbook_text(&rb, 100);
        let tail = &text[text.find("what clients see after the failover:").expect(&text)..];
        for want in [
            "kms2.corp.test activates client editions of Windows only once its count reaches 25, server editions once it reaches 5",
            "0xC004F038",
            "clients pointed at kms1.corp.test with `slmgr /skms` do not use DNS",
            "change each by hand",
            "for up to 1h (their TTL, 3600 s)",
        ] {
            assert!(
                tail.replace('\n', " ").split_whitespace().collect::<Vec<_>>().join(" ").contains(want),
                "{want:?} in:\n{tail}"
            );
        }
        assert!(text.trim_end().ends_with("done: every server serves the new records"), "{text}");
        rb.cache_ttl = None;
        assert!(!runbook_text(&rb, 100).contains("for up to"));
    }

    #[test]
    fn wrapping_keeps_lines_within_the_width() {
        let mut out = String::new();
        let body = "word ".repeat(60);
        push_wrapped(&mut out, "  CRITICAL stale-dead: ", &body, 100);
        assert!(out.lines().count() > 2);
        assert!(out.lines().all(|l| l.chars().count() <= 100), "{out}");
    }
}

/// The result of `kmsdns repair` or `kmsdns apply`, as JSON (schema 1).
#[derive(Debug, Serialize)]
pub struct RepairReport<'a> {
    pub schema: u32,
    pub generated: String,
    pub applied: bool,
    pub findings: &'a [Finding],
    pub zones: &'a [crate::repair::ZoneOutcome],
    pub exit_code: i32,
}

/// The exit code of a repair: 0 done (or nothing to do), 1 something held back or not
/// applied by policy, 2 an update failed, conflicted or did not reach every server, or none
/// of a zone's servers could be read.
pub fn repair_exit_code(outcomes: &[crate::repair::ZoneOutcome]) -> i32 {
    let severity = |o: &crate::repair::ZoneOutcome| {
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
    if p.changes.is_empty() && p.held.is_empty() {
        let _ = writeln!(out, "  no change needed");
    }
}

/// What became of each zone, for a person.
pub fn repair_text(outcomes: &[crate::repair::ZoneOutcome], width: usize) -> String {
    use crate::repair::ZoneResult;
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

/// The journal as a table.
pub fn journal_text(entries: &[crate::journal::Entry]) -> String {
    let mut out = String::new();
    if entries.is_empty() {
        out.push_str("the journal is empty\n");
    }
    for e in entries {
        let i = &e.intent;
        let result = match &e.outcome {
            Some(o) => match o.result {
                crate::journal::Applied::Applied => "applied".to_string(),
                crate::journal::Applied::NotApplied => format!("not applied ({})", o.answer),
                crate::journal::Applied::Unknown => {
                    format!("outcome unknown ({})", o.answer.trim_start_matches("unknown: "))
                }
            },
            None => "no outcome recorded".into(),
        };
        let removed: Vec<String> = i
            .before
            .iter()
            .filter(|b| !i.after.iter().any(|a| a.same_rdata(b)))
            .map(|r| format!("-{}", r.target))
            .collect();
        let added: Vec<String> = i
            .after
            .iter()
            .filter(|a| !i.before.iter().any(|b| b.same_rdata(a)))
            .map(|r| format!("+{}", r.target))
            .collect();
        let undo = i.undo_of.map(|n| format!(" (undo of {n})")).unwrap_or_default();
        if let Some(acl) = &i.acl {
            let _ =
                writeln!(out, "{:>4}  {}  {}  {}  {result}{undo}  DACL of {}", i.id, i.time, i.zone, i.server, acl.dn);
            continue;
        }
        let _ = writeln!(
            out,
            "{:>4}  {}  {}  {}  {result}{undo}  {} {}",
            i.id,
            i.time,
            i.zone,
            i.server,
            removed.join(" "),
            added.join(" ")
        );
    }
    out
}

/// What `kmsdns undo` did, for a person.
pub fn undo_text(o: &crate::repair::UndoOutcome, width: usize) -> String {
    use crate::repair::ZoneResult;
    let mut out = format!("undo of journal entry {} in zone {}\n", o.undone, o.zone);
    if let Some(dn) = &o.acl_of {
        let _ = writeln!(out, "  the DACL of {dn}, as it was before");
    }
    for r in &o.from {
        let _ = writeln!(out, "  was:      {r}");
    }
    for r in &o.to {
        let _ = writeln!(out, "  restored: {r}");
    }
    let result = match &o.result {
        ZoneResult::Applied { id, .. } if o.acl_of.is_some() => format!("applied (journal entry {id})"),
        ZoneResult::Applied { id, lagging, .. } if lagging.is_empty() => {
            format!("applied (journal entry {id}); every server serves the restored RRset")
        }
        ZoneResult::Applied { id, lagging, .. } => {
            format!("applied (journal entry {id}), but {} did not follow in time", lagging.join(", "))
        }
        ZoneResult::Conflict { error, .. } => format!("REFUSED: {error}"),
        ZoneResult::Failed { error } => format!("FAILED: {error}"),
        other => format!("{other:?}"),
    };
    push_wrapped(&mut out, "  result: ", &result, width);
    for s in &o.servers {
        let mark = if s.converged { "ok" } else { "LAGGING" };
        push_wrapped(&mut out, &format!("    {} {mark}: ", s.server), &s.answer, width);
    }
    out
}

/// The failover runbook as it ran, for a person.
pub fn runbook_text(rb: &crate::failover::Runbook, width: usize) -> String {
    use crate::failover::StepResult;
    let mode = if rb.applied { "applied" } else { "not applied" };
    let mut out = format!("failover {} -> {} ({mode})\n\n", rb.from, rb.to);
    for (i, s) in rb.steps.iter().enumerate() {
        let result = match s.result {
            StepResult::Ok => "OK",
            StepResult::Warning => "WARNING",
            StepResult::Failed => "FAILED",
            StepResult::Skipped => "skipped",
        };
        let _ = writeln!(out, "{}. {}: {result}", i + 1, s.title);
        for e in &s.evidence {
            push_wrapped(&mut out, "     ", e, width);
        }
    }
    if !rb.left.is_empty() {
        out.push_str("\nleft for a person:\n");
        for l in &rb.left {
            push_wrapped(&mut out, "  - ", l, width);
        }
    }
    out.push_str("\nwhat clients see after the failover:\n");
    for note in after_failover(rb) {
        push_wrapped(&mut out, "  - ", &note, width);
    }
    let verdict = if rb.ok && rb.applied {
        "done: every server serves the new records"
    } else if rb.ok {
        "ready: the checks passed; run again with --apply"
    } else {
        "NOT DONE: see the failed steps above"
    };
    let _ = writeln!(out, "\n{verdict}");
    out
}

/// What the seed tells an operator after a KMS host dies: the new host's count, the clients
/// DNS does not reach, and how long caches keep the old records.
fn after_failover(rb: &crate::failover::Runbook) -> Vec<String> {
    let (from, to) = (&rb.from, &rb.to);
    let cache = match rb.cache_ttl {
        Some(ttl) => format!(
            "resolvers and clients' DNS caches may keep the old records, with {from}, for up to {} (their TTL, {ttl} s): until then some clients still try {from} and lose time on it before they move on",
            crate::client_check::human_secs(ttl)
        ),
        None => "no record was replaced here, so no cache holds an old one from this failover; `kmsdns client-check DOMAIN` shows what a client's resolver still hands out".to_string(),
    };
    vec![
        format!(
            "{to} activates client editions of Windows only once its count reaches 25, server editions once it reaches 5: a host that has not served clients before counts from 0, so its first clients fail with 0xC004F038 for a while (`slmgr /dli` on {to} shows the count)"
        ),
        format!(
            "clients pointed at {from} with `slmgr /skms` do not use DNS, so this failover does not reach them: change each by hand (`slmgr /ckms`, or `slmgr /skms {to}:{}`)",
            rb.to_port
        ),
        cache,
    ]
}

/// What `kmsdns repair --acl` did, for a person.
pub fn acl_text(r: &crate::repair::AclRepair, width: usize) -> String {
    use crate::repair::AclResult;
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
        let _ = writeln!(out, "  + ACE {} (group '{group}': read and write the node's properties)", z.ace);
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
pub fn acl_exit_code(r: &crate::repair::AclRepair) -> i32 {
    use crate::repair::AclResult;
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
