//! What each command shows: text for a person, JSON for a program (`--format json`), and the
//! exit code. One file per command: [`audit`] (the audit report, `kmsdns audit`/`--audit`),
//! [`repair`] (`repair`, `apply FILE`, `repair --acl`, the plan), [`journal`] (`journal`,
//! `undo`), [`failover`] (the runbook), [`client`] (`client-check`, `explain`), [`nagios`]
//! (`--format nagios`).
//!
//! Exit codes follow the monitoring-plugin convention (Nagios, Icinga, Zabbix): 0 nothing
//! above info, 1 warnings, 2 critical, 3 the audit could not run.
//!
//! The JSON document is versioned (`"schema": 1`); fields are only ever added within a
//! version. README.md shows an example.

pub mod audit;
pub mod client;
pub mod failover;
pub mod journal;
pub mod nagios;
pub mod repair;

use crate::audit::{Finding, Severity};

pub use audit::AuditReport;
pub use failover::runbook_text;
pub use journal::{journal_text, undo_text};
pub use repair::{RepairReport, acl_exit_code, acl_text, repair_exit_code, repair_text, zone_plan_text};

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

pub(crate) fn push_wrapped(out: &mut String, head: &str, body: &str, width: usize) {
    push_wrapped_visible(out, head, head.chars().count(), body, width);
}

/// Writes `head` then `body` word-wrapped to `width` columns, continuation lines indented to
/// the body's column (capped, so a long head still leaves room for text). `visible` is the
/// head's width on screen, which differs from its length when it holds colour codes.
pub(crate) fn push_wrapped_visible(out: &mut String, head: &str, visible: usize, body: &str, width: usize) {
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
mod tests;
