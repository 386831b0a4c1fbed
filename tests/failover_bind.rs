//! `kmsdns failover` end to end against real BIND 9: the runbook an admin runs after a KMS
//! host dies, and what every server serves afterwards.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;

use kmsdns::demo::responder::{Behaviour, KmsResponder};
use support::run::{kmsdns, show};
use support::{BindLab, ZoneSpec, free_port, loopback_ip};

/// Two zones served by a primary and a secondary, both publishing kms1; kms2 stands by.
struct Site {
    lab: BindLab,
    kms1: Option<KmsResponder>,
    _kms2: Option<KmsResponder>,
    kms1_addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Site {
    fn new(kms1_alive: bool, kms2_alive: bool) -> Site {
        let ((ip1, port1), (ip2, port2)) = (loopback_ip(), loopback_ip());
        let kms1_addr = SocketAddr::from((ip1, 1688));
        let kms1 = kms1_alive.then(|| KmsResponder::from_listener(port1, Behaviour::Kms).unwrap());
        let kms2 = kms2_alive.then(|| KmsResponder::from_listener(port2, Behaviour::Kms).unwrap());
        let corp = ZoneSpec::new("corp.test")
            .record(&format!("kms1 IN A {ip1}"))
            .record(&format!("kms2 IN A {ip2}"))
            .record("_vlmcs._tcp IN SRV 0 0 1688 kms1.corp.test.");
        let branch = ZoneSpec::new("branch.test").record("_vlmcs._tcp IN SRV 0 0 1688 kms1.corp.test.");
        let lab = BindLab::primary_secondary(&[corp, branch]);
        Site { lab, kms1, _kms2: kms2, kms1_addr, dir: tempfile::tempdir().unwrap() }
    }

    /// The inventory (with a comment that must survive --update-inventory); `extra_server`
    /// adds a server to both zones, which kmsdns may repair.
    fn inventory(&self, extra_server: Option<&str>) -> PathBuf {
        self.inventory_with_policy(extra_server, "repair")
    }

    fn inventory_with_policy(&self, extra_server: Option<&str>, policy: &str) -> PathBuf {
        let mut servers: Vec<String> = self.lab.servers.iter().map(|s| format!("\"{}\"", s.addr)).collect();
        if let Some(x) = extra_server {
            servers.push(format!("\"{x}\""));
        }
        let servers = servers.join(", ");
        let text = format!(
            r#"# Our KMS estate. Keep this comment.
[defaults]
timeout = "500ms"
retries = 1
propagation_timeout = "3s"

[daemon]
state_dir = "{state}"

[[key]]
name = "kmsdns-test"
algorithm = "hmac-sha256"
secret_file = "{key}"

[[zone]]
name = "corp.test"
servers = [{servers}]
primary = "{primary}"
update_key = "kmsdns-test"
policy = "{policy}"

[[zone]]
name = "branch.test"
servers = [{servers}]
primary = "{primary}"
update_key = "kmsdns-test"
policy = "{policy}"

# The first KMS host.
[[host]]
name = "kms1.corp.test"
zones = ["corp.test", "branch.test"]
state = "active"

[[host]]
name = "kms2.corp.test"
zones = ["corp.test", "branch.test"]
state = "standby"
"#,
            state = self.dir.path().join("state").display(),
            key = self.lab.key.file.display(),
            primary = self.lab.servers[0].addr,
        );
        let path = self.dir.path().join("kmsdns.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn srv(&self, idx: usize, zone: &str) -> Vec<String> {
        self.lab.dig(idx, &format!("_vlmcs._tcp.{zone}"), "SRV")
    }
}

const KMS2: [&str; 1] = ["0 0 1688 kms2.corp.test."];
const KMS1: [&str; 1] = ["0 0 1688 kms1.corp.test."];

fn failover(inv: &Path, extra: &[&str]) -> Output {
    let mut args =
        vec!["failover", "--config", inv.to_str().unwrap(), "--from", "kms1.corp.test", "--to", "kms2.corp.test"];
    args.extend_from_slice(extra);
    kmsdns(&args)
}

#[test]
fn the_failover_moves_every_zone_on_every_server_and_updates_the_inventory() {
    let site = Site::new(false, true);
    let inv = site.inventory(None);
    let out = failover(&inv, &["--apply", "--update-inventory"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "1. check that kms2.corp.test answers as a KMS host: OK",
        "2. check that kms1.corp.test is down: OK",
        "zone corp.test: - SRV 0 0 1688 kms1.corp.test.",
        "zone branch.test: + SRV 0 0 1688 kms2.corp.test.",
        "4. apply: OK",
        "5. verify on every authoritative server (and in the directory, with [ad]): OK",
        "slmgr /ckms",
        "done: every server serves the new records",
    ] {
        assert!(text.contains(want), "missing {want:?}:\n{}", show(&out));
    }
    for zone in ["corp.test", "branch.test"] {
        assert_eq!(site.srv(0, zone), KMS2, "{zone} on the primary");
        assert_eq!(site.srv(1, zone), KMS2, "{zone} on the secondary");
    }
    // The inventory now says what happened, comments kept, and is valid.
    let edited = std::fs::read_to_string(&inv).unwrap();
    assert!(edited.contains("# Our KMS estate. Keep this comment.") && edited.contains("# The first KMS host."));
    assert!(
        edited.contains(
            "name = \"kms1.corp.test\"\nzones = [\"corp.test\", \"branch.test\"]\nstate = \"decommissioned\""
        ),
        "{edited}"
    );
    let check = kmsdns(&["check-config", "--config", inv.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(0), "{}", show(&check));
    // And the audit agrees nothing is left to do.
    let audit = kmsdns(&["audit", "--config", inv.to_str().unwrap()]);
    assert_eq!(audit.status.code(), Some(0), "{}", show(&audit));
}

#[test]
fn a_dry_run_checks_and_plans_and_sends_nothing() {
    let site = Site::new(false, true);
    let inv = site.inventory(None);
    let out = failover(&inv, &["--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["applied"], false);
    assert_eq!(v["steps"][3]["result"], "skipped");
    assert_eq!(site.srv(0, "corp.test"), KMS1);
    assert!(!site.dir.path().join("state").exists(), "a dry run writes no journal");
}

#[test]
fn an_unreachable_secondary_is_reported_and_nothing_is_lost() {
    let site = Site::new(false, true);
    let dead = format!("127.0.0.1:{}", free_port());
    let inv = site.inventory(Some(&dead));
    let out = failover(&inv, &["--apply"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("on {dead}: NOT CONVERGED")), "{}", show(&out));
    assert!(text.contains("NOT DONE"), "{}", show(&out));
    // The servers that answer hold the new records: nothing lost.
    for zone in ["corp.test", "branch.test"] {
        assert_eq!(site.srv(0, zone), KMS2);
        assert_eq!(site.srv(1, zone), KMS2);
    }
    // The journal is consistent: every change has its outcome, both applied.
    let journal = std::fs::read_to_string(site.dir.path().join("state/journal.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = journal.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.iter().filter(|l| l["phase"] == "intent").count(), 2);
    assert_eq!(lines.iter().filter(|l| l["phase"] == "outcome" && l["result"] == "applied").count(), 2);
}

#[test]
fn a_new_host_that_does_not_answer_stops_the_runbook_before_any_change() {
    let site = Site::new(false, false);
    let inv = site.inventory(None);
    let out = failover(&inv, &["--apply"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1. check that kms2.corp.test answers as a KMS host: FAILED"), "{}", show(&out));
    assert!(text.contains("not applied: a check or the plan failed"), "{}", show(&out));
    assert_eq!(site.srv(0, "corp.test"), KMS1);
}

#[test]
fn an_old_host_still_running_gets_a_warning_to_stop_publishing() {
    let site = Site::new(true, true);
    assert!(site.kms1.is_some());
    let inv = site.inventory(None);
    let out = failover(&inv, &["--apply"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2. check that kms1.corp.test is down: WARNING"), "{}", show(&out));
    assert!(text.contains("slmgr /cdns"), "{}", show(&out));
    assert!(text.contains(&format!("kms1.corp.test {}: kms-up", site.kms1_addr)), "{}", show(&out));
}

#[test]
fn a_mistyped_old_host_changes_nothing() {
    let site = Site::new(false, true);
    let inv = site.inventory(None);
    let out = kmsdns(&[
        "failover",
        "--config",
        inv.to_str().unwrap(),
        "--from",
        "kms01.corp.test",
        "--to",
        "kms2.corp.test",
        "--apply",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no zone's primary publishes it"), "{}", show(&out));
    assert_eq!(site.srv(0, "corp.test"), KMS1);
    assert_eq!(site.srv(0, "branch.test"), KMS1);
}

/// A zone with policy = "audit" is never written, whatever the command, unless the operator
/// says so for this run: failover wrote to such zones because only `repair` checked.
#[test]
fn an_audit_only_zone_is_written_only_with_override_policy() {
    let site = Site::new(false, true);
    let inv = site.inventory_with_policy(None, "audit");
    let out = failover(&inv, &["--apply"]);
    assert_ne!(out.status.code(), Some(0), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("policy = \"audit\": it will not be written; pass --override-policy"), "{}", show(&out));
    for zone in ["corp.test", "branch.test"] {
        assert_eq!(site.srv(0, zone), ["0 0 1688 kms1.corp.test."], "{zone} untouched");
    }
    assert_eq!(site.lab.serial(0, "corp.test"), Some(1), "no UPDATE was sent");

    let out = failover(&inv, &["--apply", "--override-policy"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("policy = \"audit\", written because of --override-policy"), "{}", show(&out));
    for zone in ["corp.test", "branch.test"] {
        assert_eq!(site.srv(0, zone), KMS2, "{zone} on the primary");
    }

    // Undo of an audit-only zone's change takes the same override.
    let out = kmsdns(&["undo", "1", "--config", inv.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0), "{}", show(&out));
    assert!(show(&out).contains("zone corp.test has policy = \"audit\""), "{}", show(&out));
    assert_eq!(site.srv(0, "corp.test"), KMS2);
    let out = kmsdns(&["undo", "1", "--override-policy", "--config", inv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
}

/// Another writer changes a zone between the failover's observation and its update: the
/// prerequisite fails, the zone is observed again and planned again by the failover's planner,
/// and the other writer's record is kept beside the new host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_another_writer_adds_during_the_failover_is_kept_and_the_zone_planned_again() {
    use kmsdns::apply::Mode;
    use kmsdns::cycle::{self, Carry, ZoneResult};
    use kmsdns::plan::failover::{Failover, plan};
    let site = Site::new(false, true);
    let inv = kmsdns::inventory::Inventory::load(&site.inventory(None)).unwrap();
    let name = |s: &str| kmsdns::name::DnsName::parse(s).unwrap();
    let (failover, over) = Failover::new(&inv, &name("kms1.corp.test"), &name("kms2.corp.test"));
    let seen = cycle::observe(&over).await;
    let planned = plan(&over, &seen.obs, &seen.findings, &failover);
    site.lab.update(0, "corp.test", &["update add _vlmcs._tcp.corp.test. 600 IN SRV 0 0 1688 kms3.corp.test."]);
    site.lab.wait_converged("corp.test");
    let journal = kmsdns::journal::Journal::open(&site.dir.path().join("state")).unwrap();
    let how = Carry::Failover { failover: &failover, override_policy: false };
    let outcomes = cycle::carry_out(&over, &seen, planned, Mode::Apply(&journal), how).await;
    let corp = outcomes.iter().find(|o| o.zone.as_str() == "corp.test").unwrap();
    assert!(matches!(corp.result, ZoneResult::Applied { attempts: 2, .. }), "{corp:#?}");
    assert_eq!(site.srv(0, "corp.test"), ["0 0 1688 kms2.corp.test.", "0 0 1688 kms3.corp.test."]);
    assert_eq!(site.srv(0, "branch.test"), KMS2);
}
