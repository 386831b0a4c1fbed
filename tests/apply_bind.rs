//! `kmsdns apply` and held zones against real BIND 9: a plan file is never trusted as written,
//! and a zone held because a server could not be read says what each server holds.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use kmsdns::demo::responder::{Behaviour, KmsResponder};
use kmsdns::plan::file::PlanFile;
use kmsdns::plan::{Action, Change};
use support::run::{kmsdns, show};
use support::{BindLab, ZoneSpec, loopback_ip};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The report wraps long lines: its words, one space apart.
fn words(b: &[u8]) -> String {
    text(b).split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A corp.test zone on a primary and a secondary: kms1 healthy, kms2 dead, old decommissioned
/// (and still answering), kms3 healthy but unpublished.
struct Site {
    lab: BindLab,
    responders: Vec<KmsResponder>,
    state: tempfile::TempDir,
}

const BEFORE: [&str; 3] = ["0 0 1688 kms1.corp.test.", "0 0 1688 kms2.corp.test.", "0 0 1688 old.corp.test."];

impl Site {
    fn new() -> Site {
        let ((kms1, kms1_port), (kms2, _), (kms3, kms3_port), (old, old_port)) =
            (loopback_ip(), loopback_ip(), loopback_ip(), loopback_ip());
        let responders = [kms1_port, kms3_port, old_port]
            .into_iter()
            .map(|port| KmsResponder::from_listener(port, Behaviour::Kms).expect("start a KMS responder"))
            .collect();
        let zone = ZoneSpec::new("corp.test")
            .record(&format!("kms1 IN A {kms1}"))
            .record(&format!("kms2 IN A {kms2}"))
            .record(&format!("kms3 IN A {kms3}"))
            .record(&format!("old IN A {old}"))
            .record("_vlmcs._tcp IN SRV 0 0 1688 kms1.corp.test.")
            .record("_vlmcs._tcp IN SRV 0 0 1688 kms2.corp.test.")
            .record("_vlmcs._tcp IN SRV 0 0 1688 old.corp.test.");
        let lab = BindLab::primary_secondary(&[zone]);
        Site { lab, responders, state: tempfile::tempdir().expect("state dir") }
    }

    /// Writes an inventory whose zone repairs through the primary with `settings` added.
    fn inventory(&self, settings: &str) -> PathBuf {
        let servers: Vec<String> = self.lab.servers.iter().map(|s| format!("\"{}\"", s.addr)).collect();
        let path = self.state.path().join("kmsdns.toml");
        let text = format!(
            r#"[defaults]
timeout = "1s"
retries = 1
ttl = 600
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
{settings}

[[host]]
name = "kms1.corp.test"
zones = ["corp.test"]
state = "active"

[[host]]
name = "kms2.corp.test"
zones = ["corp.test"]
state = "active"

[[host]]
name = "kms3.corp.test"
zones = ["corp.test"]
state = "active"

[[host]]
name = "old.corp.test"
zones = []
state = "decommissioned"
"#,
            state = self.state.path().join("state").display(),
            key = self.lab.key.file.display(),
            servers = servers.join(", "),
            primary = self.lab.servers[0].addr,
        );
        std::fs::write(&path, text).expect("write inventory");
        path
    }

    /// `kmsdns plan --out` into the state dir; returns the plan file.
    fn plan(&self, inv: &Path) -> PathBuf {
        let path = self.state.path().join("plan.json");
        let out = kmsdns(&["plan", "--config", inv.to_str().unwrap(), "--out", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{}", show(&out));
        path
    }

    fn apply(&self, plan: &Path, inv: &Path) -> Output {
        kmsdns(&["apply", plan.to_str().unwrap(), "--config", inv.to_str().unwrap()])
    }

    fn srv(&self, idx: usize) -> Vec<String> {
        self.lab.dig(idx, "_vlmcs._tcp.corp.test", "SRV")
    }

    /// Lines of the primary's log that record an UPDATE it received.
    fn updates_logged(&self) -> usize {
        self.lab.servers[0].log().lines().filter(|l| l.contains("updat") && l.contains("corp.test")).count()
    }
}

#[test]
fn a_plan_edited_by_hand_or_truncated_is_refused_and_nothing_is_sent() {
    let site = Site::new();
    let inv = site.inventory("");
    let plan = site.plan(&inv);
    let written = std::fs::read_to_string(&plan).unwrap();
    // The admin "fixes" the plan: delete the healthy kms1 instead of the dead kms2.
    let edited = written.replace("\"kms2.corp.test\"", "\"kms1.corp.test\"");
    assert_ne!(edited, written);
    for (what, contents) in [("edited", edited), ("truncated", written[..written.len() * 2 / 3].to_string())] {
        std::fs::write(&plan, contents).unwrap();
        let out = site.apply(&plan, &inv);
        assert_eq!(out.status.code(), Some(2), "{what}: {}", show(&out));
        let stderr = words(&out.stderr);
        let want = if what == "edited" { "refused: the plan's contents do not match its digest" } else { "truncated" };
        assert!(stderr.contains(want), "{what}: {}", show(&out));
        assert_eq!(site.srv(0), BEFORE, "{what}");
        assert_eq!(site.updates_logged(), 0, "{what}: {}", site.lab.servers[0].log());
    }
    // The plan as written is applied.
    std::fs::write(&plan, &written).unwrap();
    let out = site.apply(&plan, &inv);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(site.srv(0), ["0 0 1688 kms1.corp.test.", "0 0 1688 kms3.corp.test."]);
}

#[test]
fn a_re_digested_plan_that_breaks_a_rail_is_not_applied_as_written() {
    let site = Site::new();
    let inv = site.inventory("max_deletes = 1");
    let plan = site.plan(&inv);
    // Through the library, as someone who knows the format would: the decommissioned host
    // that max_deletes held back, and the healthy kms1 that no finding asks to remove, are
    // added to the plan, and the file is sealed again.
    let mut file: PlanFile = serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    let zone = &mut file.zones[0];
    assert_eq!(zone.deletes().count(), 1, "{zone:#?}");
    let held_back = zone.held.iter().find_map(|h| h.record.clone()).expect("max_deletes held one record back");
    assert_eq!(held_back.target.as_str(), "old.corp.test");
    let kms1 = zone.before.iter().find(|r| r.target.as_str() == "kms1.corp.test").unwrap().clone();
    for record in [held_back, kms1] {
        let reason = "added by hand".to_string();
        zone.changes.push(Change { action: Action::Delete, record, code: kmsdns::audit::Code::StaleDead, reason });
    }
    zone.held.clear();
    file.seal().unwrap();
    std::fs::write(&plan, file.to_json().unwrap()).unwrap();

    let out = site.apply(&plan, &inv);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stdout = words(&out.stdout);
    assert!(stdout.contains("held: SRV 0 0 1688 old.corp.test.: held back: at most max_deletes = 1"), "{}", show(&out));
    assert!(
        stdout.contains("held: SRV 0 0 1688 kms1.corp.test.: not sent: no finding of now asks for it"),
        "{}",
        show(&out)
    );
    // What the servers answer: the dead kms2 went, kms3 came, kms1 and old stayed.
    let want = ["0 0 1688 kms1.corp.test.", "0 0 1688 kms3.corp.test.", "0 0 1688 old.corp.test."];
    assert_eq!(site.srv(0), want);
    site.lab.wait_converged("corp.test");
    assert_eq!(site.srv(1), want);
}

#[test]
fn a_re_digested_plan_that_deletes_the_last_live_target_sends_nothing_for_it() {
    let mut site = Site::new();
    // kms1 dies and kms3 is only a standby: the decommissioned old is the one target that
    // still answers as KMS, and nothing can be published in its place.
    drop(site.responders.remove(0));
    let inv = site.inventory("max_deletes = 5");
    let text = std::fs::read_to_string(&inv).unwrap();
    let standby = text.replace(
        "name = \"kms3.corp.test\"\nzones = [\"corp.test\"]\nstate = \"active\"",
        "name = \"kms3.corp.test\"\nzones = [\"corp.test\"]\nstate = \"standby\"",
    );
    assert_ne!(standby, text);
    std::fs::write(&inv, standby).unwrap();
    let plan = site.plan(&inv);
    let mut file: PlanFile = serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    let zone = &mut file.zones[0];
    let old = zone.held.iter().find_map(|h| h.record.clone()).expect("the last-live rail held old back");
    assert_eq!(old.target.as_str(), "old.corp.test");
    let reason = "added by hand".to_string();
    zone.changes =
        vec![Change { action: Action::Delete, record: old, code: kmsdns::audit::Code::StaleDecommissioned, reason }];
    zone.held.clear();
    file.seal().unwrap();
    std::fs::write(&plan, file.to_json().unwrap()).unwrap();

    let out = site.apply(&plan, &inv);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        words(&out.stdout).contains(
            "held: SRV 0 0 1688 old.corp.test.: held back: it is the zone's last target that answers as a KMS host"
        ),
        "{}",
        show(&out)
    );
    assert_eq!(site.srv(0), BEFORE);
    assert_eq!(site.updates_logged(), 0, "{}", site.lab.servers[0].log());
}

#[test]
fn a_zone_held_for_a_stopped_server_says_what_the_other_holds() {
    let mut site = Site::new();
    let inv = site.inventory("");
    let (primary, secondary) = (site.lab.servers[0].addr, site.lab.servers[1].addr);
    site.lab.servers[1].stop();
    let out = kmsdns(&["repair", "--config", inv.to_str().unwrap()]);
    // Held, but the primary could be read: a warning, not critical.
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stdout = text(&out.stdout);
    for r in BEFORE {
        let line = format!("now on {primary}: SRV {r}");
        assert!(stdout.contains(&line), "{line}\n{}", show(&out));
    }
    assert!(words(&out.stdout).contains(&format!("now on {secondary}: unreadable: ")), "{}", show(&out));
    assert!(!stdout.contains("no SRV records"), "{}", show(&out));
    assert_eq!(site.srv(0), BEFORE);
}

#[test]
fn a_zone_none_of_whose_servers_could_be_read_is_critical() {
    let mut site = Site::new();
    let inv = site.inventory("");
    let servers: Vec<_> = site.lab.servers.iter().map(|s| s.addr).collect();
    for s in &mut site.lab.servers {
        s.stop();
    }
    let out = kmsdns(&["repair", "--config", inv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stdout = words(&out.stdout);
    for s in servers {
        assert!(stdout.contains(&format!("now on {s}: unreadable: ")), "{s}: {}", show(&out));
    }
    assert!(!stdout.contains("no SRV records"), "{}", show(&out));
    let out = kmsdns(&["repair", "--config", inv.to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["exit_code"], 2, "{v}");
    assert_eq!(v["zones"][0]["plan"]["servers"][0]["holds"]["outcome"], "unknown", "{v}");
}
