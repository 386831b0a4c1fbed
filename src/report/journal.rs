//! `kmsdns journal` and `kmsdns undo`, for a person.

use std::fmt::Write as _;

use super::push_wrapped;

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
pub fn undo_text(o: &crate::cycle::UndoOutcome, width: usize) -> String {
    use crate::cycle::ZoneResult;
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
