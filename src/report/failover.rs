//! The failover runbook as it ran, for a person.

use std::fmt::Write as _;

use super::push_wrapped;

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
