//! The evidence behind a delete, against real BIND: a target that lives in another declared
//! zone, or behind an alias into one, is looked up where it lives, by the first plan and by the
//! re-plan after a conflict alike.

mod support;

use std::path::PathBuf;

use kmsdns::demo::responder::{Behaviour, KmsResponder};
use support::run::{kmsdns, show};
use support::{BindLab, ZoneSpec, loopback_ip};

/// corp.test publishes kms1.corp.test (up), live.hosts.test (up, its A record in the other
/// declared zone hosts.test), alias.corp.test (a CNAME to live.hosts.test) and dead.corp.test
/// (nothing listens).
struct Estate {
    lab: BindLab,
    _kms: Vec<KmsResponder>,
    dir: tempfile::TempDir,
}

impl Estate {
    fn new() -> Estate {
        let ((kms1, kms1_port), (live, live_port), (dead, _)) = (loopback_ip(), loopback_ip(), loopback_ip());
        let kms = [kms1_port, live_port]
            .into_iter()
            .map(|port| KmsResponder::from_listener(port, Behaviour::Kms).expect("start a KMS responder"))
            .collect();
        let corp = ZoneSpec::new("corp.test")
            .record(&format!("kms1 IN A {kms1}"))
            .record(&format!("dead IN A {dead}"))
            .record("alias IN CNAME live.hosts.test.")
            .record("_vlmcs._tcp 600 IN SRV 0 0 1688 kms1.corp.test.")
            .record("_vlmcs._tcp 600 IN SRV 0 0 1688 live.hosts.test.")
            .record("_vlmcs._tcp 600 IN SRV 0 0 1688 alias.corp.test.")
            .record("_vlmcs._tcp 600 IN SRV 0 0 1688 dead.corp.test.");
        let hosts = ZoneSpec::new("hosts.test").record(&format!("live IN A {live}"));
        let lab = BindLab::primary_secondary(&[corp, hosts]);
        Estate { lab, _kms: kms, dir: tempfile::tempdir().expect("temp dir") }
    }

    fn inventory(&self) -> PathBuf {
        let servers: Vec<String> = self.lab.servers.iter().map(|s| format!("\"{}\"", s.addr)).collect();
        let servers = servers.join(", ");
        let mut text = format!(
            r#"[defaults]
timeout = "1s"
retries = 1
propagation_timeout = "10s"

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
policy = "repair"

[[zone]]
name = "hosts.test"
servers = [{servers}]
policy = "audit"
"#,
            state = self.dir.path().join("state").display(),
            key = self.lab.key.file.display(),
            primary = self.lab.servers[0].addr,
        );
        for host in ["kms1.corp.test", "live.hosts.test", "alias.corp.test", "dead.corp.test"] {
            text.push_str(&format!("\n[[host]]\nname = \"{host}\"\nzones = [\"corp.test\"]\nstate = \"active\"\n"));
        }
        let path = self.dir.path().join("kmsdns.toml");
        std::fs::write(&path, text).expect("write inventory");
        path
    }

    fn targets(&self) -> Vec<String> {
        let mut t: Vec<String> = self
            .lab
            .dig(0, "_vlmcs._tcp.corp.test", "SRV")
            .iter()
            .filter_map(|l| l.split_whitespace().last().map(|s| s.trim_end_matches('.').to_string()))
            .collect();
        t.sort();
        t
    }
}

/// An SRV target that is an alias into another declared zone: BIND answers the address question
/// with the CNAME alone. Taking that as "no address" removed a live host's alias record.
#[test]
fn an_alias_into_another_zone_is_followed_and_its_record_kept() {
    let estate = Estate::new();
    let inv = estate.inventory();
    let out = kmsdns(&["repair", "--apply", "--config", inv.to_str().unwrap()]);
    assert_eq!(
        estate.targets(),
        vec!["alias.corp.test", "kms1.corp.test", "live.hosts.test"],
        "only the dead host goes\n{}",
        show(&out)
    );
}

/// After a prerequisite conflict the zone is observed again: that observation must look the
/// targets up where the first one did. Looking them up through the system resolver instead
/// deleted the live host whose name lies in another declared zone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replan_after_a_conflict_sees_what_the_first_plan_saw() {
    use kmsdns::apply::Mode;
    use kmsdns::cycle::ZoneResult;
    let estate = Estate::new();
    let inv = kmsdns::inventory::Inventory::load(&estate.inventory()).unwrap();
    let obs = kmsdns::observe::observe(&inv).await;
    let findings = kmsdns::audit::audit(&inv, &obs);
    let plan = kmsdns::plan::plan(&inv, &obs, &findings);
    // Another writer removes the dead host after we looked: our update's prerequisite fails.
    estate.lab.update(0, "corp.test", &["update delete _vlmcs._tcp.corp.test. SRV 0 0 1688 dead.corp.test."]);
    estate.lab.wait_converged("corp.test");
    let journal = kmsdns::journal::Journal::open(&estate.dir.path().join("state")).unwrap();
    let outcomes = kmsdns::cycle::carry::carry_out(&inv, &obs, plan, Mode::Apply(&journal)).await;
    let o = outcomes.iter().find(|o| o.zone.as_str() == "corp.test").unwrap();
    assert!(matches!(o.result, ZoneResult::SettledByOther { .. }), "{o:#?}");
    assert_eq!(estate.targets(), vec!["alias.corp.test", "kms1.corp.test", "live.hosts.test"]);
}

/// A KMS host whose service is restarting: the first connection is closed without an answer,
/// and the service is back a moment later.
fn restarting_kms(port: std::net::TcpListener) -> std::thread::JoinHandle<KmsResponder> {
    std::thread::spawn(move || {
        let first = port.accept().expect("the audit's probe connects");
        drop(first);
        KmsResponder::from_listener(port, Behaviour::Kms).expect("the service is back")
    })
}

/// One closed connection while a KMS service restarts made `repair --apply` delete an active
/// host's record. A one-shot run now probes again before a delete on liveness, and a really
/// dead host's delete says what confirmed it.
#[test]
fn a_one_shot_repair_confirms_a_dead_host_before_deleting_its_record() {
    let ((kms1, kms1_port), (kms2, kms2_port), (dead, _)) = (loopback_ip(), loopback_ip(), loopback_ip());
    let _kms1 = KmsResponder::from_listener(kms1_port, Behaviour::Kms).expect("start a KMS responder");
    let kms2_back = restarting_kms(kms2_port);
    let zone = ZoneSpec::new("corp.test")
        .record(&format!("kms1 IN A {kms1}"))
        .record(&format!("kms2 IN A {kms2}"))
        .record(&format!("dead IN A {dead}"))
        .record("_vlmcs._tcp 600 IN SRV 0 0 1688 kms1.corp.test.")
        .record("_vlmcs._tcp 600 IN SRV 0 0 1688 kms2.corp.test.")
        .record("_vlmcs._tcp 600 IN SRV 0 0 1688 dead.corp.test.");
    let lab = BindLab::primary_secondary(&[zone]);
    let dir = tempfile::tempdir().expect("temp dir");
    let servers: Vec<String> = lab.servers.iter().map(|s| format!("\"{}\"", s.addr)).collect();
    let inv = dir.path().join("kmsdns.toml");
    let mut text = format!(
        "[defaults]\ntimeout = \"1s\"\nretries = 0\nconfirm_probes = 3\nconfirm_window = \"600ms\"\n\n[daemon]\nstate_dir = \"{}\"\n\n[[key]]\nname = \"kmsdns-test\"\nalgorithm = \"hmac-sha256\"\nsecret_file = \"{}\"\n\n[[zone]]\nname = \"corp.test\"\nservers = [{}]\nprimary = \"{}\"\nupdate_key = \"kmsdns-test\"\npolicy = \"repair\"\n",
        dir.path().join("state").display(),
        lab.key.file.display(),
        servers.join(", "),
        lab.servers[0].addr
    );
    for h in ["kms1", "kms2", "dead"] {
        text.push_str(&format!("\n[[host]]\nname = \"{h}.corp.test\"\nzones = [\"corp.test\"]\nstate = \"active\"\n"));
    }
    std::fs::write(&inv, text).expect("write inventory");

    let out = kmsdns(&["repair", "--apply", "--format", "json", "--config", inv.to_str().unwrap()]);
    let _kms2 = kms2_back.join().expect("kms2's service restarted");
    lab.wait_converged("corp.test");
    let mut targets: Vec<String> = lab
        .dig(1, "_vlmcs._tcp.corp.test", "SRV")
        .iter()
        .filter_map(|l| l.split_whitespace().last().map(|s| s.trim_end_matches('.').to_string()))
        .collect();
    targets.sort();
    assert_eq!(targets, vec!["kms1.corp.test", "kms2.corp.test"], "only the dead host goes\n{}", show(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let zone = &report["zones"][0];
    let reason = zone["plan"]["changes"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("confirmed:") && reason.contains("3 of 3 probes"), "{}", show(&out));
    let held = zone["plan"]["held"].to_string();
    assert!(held.contains("kms2.corp.test") && held.contains("answered as a KMS host on confirming probe"), "{held}");
}
