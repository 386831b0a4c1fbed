//! `kmsdns --audit --format nagios`: the audit as one line of the monitoring-plugin output
//! format (Nagios Plugin Guidelines, "Plugin Output" and "Performance data"), for Nagios,
//! Icinga, Naemon and Zabbix's Nagios checks. The exit code is the report's own (0 OK,
//! 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
//!
//! ```text
//! KMSDNS CRITICAL - 2 critical, 1 warning in 12 zones (1 server unreadable) | critical=2;;;0 …
//! ```

use std::time::Duration;

use super::{AuditReport, EXIT_UNKNOWN};

/// The plugin's name, the first word of its line.
const PLUGIN: &str = "KMSDNS";

/// The status word for a monitoring-plugin exit code.
fn status(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "WARNING",
        2 => "CRITICAL",
        _ => "UNKNOWN",
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The one line for an audit that ran, `took` being how long it took, with a newline.
pub fn line(report: &AuditReport, took: Duration) -> String {
    let s = &report.summary;
    let targets_up = report.targets.iter().filter(|t| t.probes.iter().any(|p| p.state == "kms-up")).count();
    let unreadable = match s.servers_unreadable {
        0 => String::new(),
        n => format!(" ({} unreadable)", plural(n, "server", "servers")),
    };
    format!(
        "{PLUGIN} {} - {} critical, {} warning in {}{unreadable} | critical={};;;0 warning={};;;0 zones={};;;0 servers_unreadable={};;;0 targets_up={targets_up};;;0 time={:.2}s;;;0\n",
        status(s.exit_code),
        s.critical,
        s.warning,
        plural(s.zones, "zone", "zones"),
        s.critical,
        s.warning,
        s.zones,
        s.servers_unreadable,
        took.as_secs_f64(),
    )
}

/// The one line for an audit that could not run (exit code 3): the first line of `why`, and
/// how many more there were. A `|` would start the performance data, so it is replaced.
pub fn unknown(why: &str) -> (String, i32) {
    let mut lines = why.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("the audit could not run").replace('|', "/");
    let more = match lines.count() {
        0 => String::new(),
        n => format!(" (and {n} more {}; run `kmsdns check-config`)", if n == 1 { "problem" } else { "problems" }),
    };
    (format!("{PLUGIN} {} - {first}{more}\n", status(EXIT_UNKNOWN)), EXIT_UNKNOWN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::audit::{ProbeReport, Summary, TargetReport};

    fn report(
        critical: usize,
        warning: usize,
        zones: usize,
        unreadable: usize,
        up: usize,
        exit_code: i32,
    ) -> AuditReport<'static> {
        let target = |i: usize, state: &'static str| TargetReport {
            name: crate::name::DnsName::parse(&format!("kms{i}.corp.test")).unwrap(),
            resolution: "addresses",
            error: None,
            probes: vec![ProbeReport { endpoint: format!("192.0.2.{i}:1688").parse().unwrap(), state, detail: None }],
        };
        let mut targets: Vec<TargetReport> = (0..up).map(|i| target(i, "kms-up")).collect();
        targets.push(target(up, "down"));
        AuditReport {
            schema: crate::report::SCHEMA,
            generated: String::new(),
            zones: vec![],
            targets: targets.into_iter().collect(),
            findings: vec![],
            summary: Summary {
                critical,
                warning,
                info: 0,
                zones,
                servers: zones * 2,
                servers_unreadable: unreadable,
                targets: up + 1,
                exit_code,
            },
        }
    }

    #[test]
    fn the_line_has_the_status_a_summary_and_perfdata() {
        let line = line(&report(2, 1, 12, 1, 5, 2), Duration::from_millis(120));
        assert_eq!(
            line,
            "KMSDNS CRITICAL - 2 critical, 1 warning in 12 zones (1 server unreadable) | critical=2;;;0 warning=1;;;0 zones=12;;;0 servers_unreadable=1;;;0 targets_up=5;;;0 time=0.12s;;;0\n"
        );
    }

    #[test]
    fn a_clean_audit_is_ok_and_says_nothing_of_unreadable_servers() {
        let line = line(&report(0, 0, 1, 0, 2, 0), Duration::from_millis(3));
        assert!(line.starts_with("KMSDNS OK - 0 critical, 0 warning in 1 zone | critical=0;;;0 "), "{line}");
        assert!(line.ends_with("targets_up=2;;;0 time=0.00s;;;0\n"), "{line}");
        let warn = super::line(&report(0, 3, 2, 2, 0, 1), Duration::ZERO);
        assert!(
            warn.starts_with("KMSDNS WARNING - 0 critical, 3 warning in 2 zones (2 servers unreadable) |"),
            "{warn}"
        );
    }

    #[test]
    fn an_audit_that_could_not_run_is_one_unknown_line() {
        let (line, code) = unknown("invalid configuration: /etc/kmsdns/kmsdns.toml:3:1: a|b\n/x:4:1: c\n/x:5:1: d\n");
        assert_eq!(code, 3);
        assert_eq!(
            line,
            "KMSDNS UNKNOWN - invalid configuration: /etc/kmsdns/kmsdns.toml:3:1: a/b (and 2 more problems; run `kmsdns check-config`)\n"
        );
        let (line, _) = unknown("cannot start");
        assert_eq!(line, "KMSDNS UNKNOWN - cannot start\n");
    }
}
