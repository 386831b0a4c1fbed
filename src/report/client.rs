//! `kmsdns client-check` and `kmsdns explain` for a person.

use std::fmt::Write as _;

use super::push_wrapped;
use crate::audit::Severity;
use crate::client_check::{ClientCheck, SrvLookup, human_secs};
use crate::explain::{Entry, Explained};

fn ms(n: u64) -> String {
    match n {
        0 => "nothing".into(),
        1..=999 => format!("{n}ms"),
        _ => humantime::format_duration(std::time::Duration::from_millis(n / 100 * 100)).to_string(),
    }
}

/// What a client meets, step by step, then the verdict and the problems.
pub fn client_check_text(c: &ClientCheck, width: usize) -> String {
    let mut out = String::new();
    let via = c.resolver.as_ref().map(|r| format!("{} ({})", r.addr, r.from)).unwrap_or_else(|| "no resolver".into());
    let _ = writeln!(out, "client-check {}: {}. SRV through {via}, RD=1, as a KMS client asks", c.domain, c.owner);
    for f in &c.resolvers_failed {
        push_wrapped(&mut out, "  ", &format!("{f}; the next resolver was asked"), width);
    }
    let answer = match &c.srv {
        SrvLookup::Records { records, ttl_left, unusable } => format!(
            "{} SRV record(s){}; the resolver's copy expires in {}",
            records.len(),
            if unusable.is_empty() { String::new() } else { format!(" and {} no client can use", unusable.len()) },
            human_secs(*ttl_left)
        ),
        SrvLookup::NxDomain { negative_ttl_left } => {
            format!("NXDOMAIN{}", negative(*negative_ttl_left))
        }
        SrvLookup::NoData { negative_ttl_left } => format!("no SRV record{}", negative(*negative_ttl_left)),
        SrvLookup::Failed { error } => format!("none: {error}"),
    };
    push_wrapped(&mut out, "answer: ", &answer, width);

    if !c.order.is_empty() {
        out.push_str("\norder a client takes (RFC 2782: lowest priority first; within one, a weighted random pick):\n");
        for (i, g) in c.order.iter().enumerate() {
            let names: Vec<String> = g.targets.iter().map(|p| format!("{} (weight {})", p.target, p.weight)).collect();
            push_wrapped(&mut out, &format!("  priority {}: ", g.priority), &names.join(", "), width);
            let how = match g.targets.len() {
                1 if i == 0 => "the only target: always tried first".to_string(),
                1 => {
                    format!("the only target: tried after every target of priority {} failed", c.order[i - 1].priority)
                }
                n if g.equal_weights => format!(
                    "equal weights: every one of the {} orders is possible, each as likely; each target is tried first by 1 client in {n}",
                    g.orders
                ),
                _ => {
                    let shares: Vec<String> =
                        g.targets.iter().map(|p| format!("{} {:.0}%", p.target, p.first_share * 100.0)).collect();
                    format!("every one of the {} orders is possible; tried first: {}", g.orders, shares.join(", "))
                }
            };
            push_wrapped(&mut out, "      ", &how, width);
        }
    }

    if !c.targets.is_empty() {
        let _ = writeln!(
            out,
            "\ntargets, probed in one order a client could take (connect timeout {}):",
            ms(c.connect_timeout_ms)
        );
        for (i, t) in c.targets.iter().enumerate() {
            let _ = writeln!(out, "  {}. SRV {} {} {} {}.", i + 1, t.priority, t.weight, t.port, t.target);
            match (t.resolution, &t.error) {
                ("no-address", _) => {
                    push_wrapped(&mut out, "       ", "no A or AAAA through the resolver: a client skips it", width)
                }
                ("failed", Some(e)) => push_wrapped(&mut out, "       ", &format!("address lookup failed: {e}"), width),
                _ => {}
            }
            for a in &t.addresses {
                let what = match (a.state, &a.detail) {
                    ("kms-up", _) => format!("kms-up ({})", ms(a.elapsed_ms).replace("nothing", "<1ms")),
                    (state, detail) => {
                        let detail = detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default();
                        let cost = if a.silent {
                            format!("a black hole: a client loses {}, its connect timeout", ms(a.lost_ms))
                        } else if a.lost_ms == 0 {
                            "answered at once: a client loses nothing on it".into()
                        } else {
                            format!("a client loses {}", ms(a.lost_ms))
                        };
                        format!("{state}{detail}; {cost}")
                    }
                };
                push_wrapped(&mut out, &format!("       {} ", a.endpoint), &what, width);
            }
        }
    }

    out.push_str("\nverdict:\n");
    let v = &c.verdict;
    let first = match (v.first.as_slice(), v.first_priority) {
        ([], _) if c.targets.is_empty() => "none: there is no target to try".to_string(),
        ([], _) => format!(
            "none: no target answers as a KMS host; a client gives up after {} (0xC004F074)",
            ms(v.give_up_after_ms.unwrap_or(0))
        ),
        ([one], Some(p)) => {
            format!("{one}, the only working host of priority {p}: every client that gets this far finds it first")
        }
        (many, Some(p)) => {
            let names: Vec<String> = many.iter().map(|n| n.to_string()).collect();
            format!("{} (priority {p}): whichever the weighted pick gives a client first", names.join(" or "))
        }
        _ => String::new(),
    };
    push_wrapped(&mut out, "  first host a client finds: ", &first, width);
    if let (Some(best), Some(worst)) = (v.best_case_ms, v.worst_case_ms) {
        push_wrapped(
            &mut out,
            "  time to a working host: ",
            &format!(
                "at best {}, at worst {} (when every failing target of its priority comes first)",
                ms(best),
                ms(worst)
            ),
            width,
        );
    }
    let stale: Vec<String> = v.stale.iter().map(|n| n.to_string()).collect();
    let stale = if stale.is_empty() { "none".to_string() } else { stale.join(", ") };
    push_wrapped(&mut out, "  stale: ", &stale, width);
    if let Some(t) = v.ttl_left {
        push_wrapped(
            &mut out,
            "  TTL left: ",
            &format!(
                "{} in the resolver's cache: a fixed record reaches the clients that use it within that, plus what their own DNS cache keeps",
                human_secs(t)
            ),
            width,
        );
    }

    if !c.problems.is_empty() {
        out.push('\n');
    }
    for p in &c.problems {
        let label = match p.severity {
            Severity::Critical => "CRITICAL",
            Severity::Warning => "WARNING",
            Severity::Info => "INFO",
        };
        let code = p.code.map(|c| format!(" {}", c.as_str())).unwrap_or_default();
        push_wrapped(&mut out, &format!("{label}{code}: "), &p.message, width);
        push_wrapped(&mut out, "    fix: ", &p.fix, width);
    }
    let _ = writeln!(out, "\nexit {}", c.exit_code);
    out
}

fn negative(ttl: Option<u32>) -> String {
    ttl.map(|t| format!("; the resolver keeps this negative answer for {} more", human_secs(t))).unwrap_or_default()
}

/// One entry of the table, or the statement that kmsdns cannot check the code.
pub fn explain_text(e: &Explained, width: usize) -> String {
    let mut out = String::new();
    match e {
        Explained::Known { entry } => entry_text(&mut out, entry, width),
        Explained::Unknown { message, .. } => push_wrapped(&mut out, "", message, width),
    }
    out
}

/// Every entry, one line each.
pub fn explain_list_text(entries: &[Entry], width: usize) -> String {
    let mut out =
        String::from("activation error codes with a DNS or KMS-host cause (`kmsdns explain CODE` for one):\n");
    for e in entries {
        push_wrapped(&mut out, &format!("  {}  ", e.code), &e.message, width);
    }
    out
}

fn entry_text(out: &mut String, e: &Entry, width: usize) {
    let name = e.name.as_ref().map(|n| format!(" ({n})")).unwrap_or_default();
    push_wrapped(out, &format!("{}{name}: ", e.code), &e.message, width);
    push_wrapped(out, "  means: ", &e.meaning, width);
    let findings = if e.findings.is_empty() {
        "none: kmsdns cannot see this cause from outside".to_string()
    } else {
        e.findings.join(", ")
    };
    push_wrapped(out, "  kmsdns findings for its cause: ", &findings, width);
    if let Some(c) = &e.client_check {
        push_wrapped(out, "  kmsdns client-check shows: ", c, width);
    }
    out.push_str("  next:\n");
    for n in &e.next {
        push_wrapped(out, "    - ", n, width);
    }
    push_wrapped(out, "  source: ", &e.source, width);
}
