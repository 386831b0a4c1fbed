//! What became of a change, against real BIND: applied, not applied, or unknown when nobody saw
//! the answer; the next observation settles "unknown", and undo works on what was applied.

mod support;

use std::path::PathBuf;

use kmsdns::demo::responder::{Behaviour, KmsResponder};
use serde_json::Value;
use support::run::{kmsdns, show};
use support::{BindLab, LostAnswerRelay, RogueDns, RogueZone, ZoneSpec, loopback_ip};

struct Site {
    lab: BindLab,
    _kms: KmsResponder,
    dir: tempfile::TempDir,
}

impl Site {
    /// corp.test on a primary and a secondary: kms1 answers, nothing listens for dead.
    fn new() -> Site {
        let ((kms1, port), (dead, _)) = (loopback_ip(), loopback_ip());
        let kms = KmsResponder::from_listener(port, Behaviour::Kms).expect("start a KMS responder");
        let zone = ZoneSpec::new("corp.test")
            .record(&format!("kms1 IN A {kms1}"))
            .record(&format!("dead IN A {dead}"))
            .record("_vlmcs._tcp 600 IN SRV 0 0 1688 kms1.corp.test.")
            .record("_vlmcs._tcp 600 IN SRV 0 0 1688 dead.corp.test.");
        Site { lab: BindLab::primary_secondary(&[zone]), _kms: kms, dir: tempfile::tempdir().expect("temp dir") }
    }

    fn inventory(&self, primary: std::net::SocketAddr) -> PathBuf {
        let servers: Vec<String> = self.lab.servers.iter().map(|s| format!("\"{}\"", s.addr)).collect();
        let text = format!(
            r#"[defaults]
timeout = "1s"
retries = 1
propagation_timeout = "5s"

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

[[host]]
name = "kms1.corp.test"
zones = ["corp.test"]
state = "active"

[[host]]
name = "dead.corp.test"
zones = ["corp.test"]
state = "standby"
"#,
            state = self.dir.path().join("state").display(),
            key = self.lab.key.file.display(),
            servers = servers.join(", "),
        );
        let path = self.dir.path().join("kmsdns.toml");
        std::fs::write(&path, text).expect("write inventory");
        path
    }

    fn targets(&self, idx: usize) -> Vec<String> {
        let mut t: Vec<String> = self
            .lab
            .dig(idx, "_vlmcs._tcp.corp.test", "SRV")
            .iter()
            .filter_map(|l| l.split_whitespace().last().map(|s| s.trim_end_matches('.').to_string()))
            .collect();
        t.sort();
        t
    }
}

fn journal(inv: &str) -> Vec<Value> {
    let out = kmsdns(&["journal", "--format", "json", "--config", inv]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    serde_json::from_slice::<Value>(&out.stdout).expect("journal JSON").as_array().cloned().unwrap_or_default()
}

/// The primary applies the update, and its answer never arrives. Recording that as "not
/// applied" made `undo` refuse a change the servers serve.
#[test]
fn an_update_whose_answer_was_lost_is_unknown_until_the_servers_show_it_and_can_be_undone() {
    let site = Site::new();
    let relay = LostAnswerRelay::start(site.lab.servers[0].addr);
    let inv = site.inventory(relay.addr);
    let inv = inv.to_str().unwrap();

    let out = kmsdns(&["repair", "--apply", "--config", inv]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert_eq!(relay.relayed(), 1, "the primary answered the update");
    site.lab.wait_converged("corp.test");
    assert_eq!(site.targets(0), vec!["kms1.corp.test"], "the primary applied it");
    let entries = journal(inv);
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0]["outcome"]["result"], "unknown", "{entries:#?}");

    // The next run sees the zone serve the change's "after": applied.
    let out = kmsdns(&["repair", "--apply", "--config", inv]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let entries = journal(inv);
    assert_eq!(entries.len(), 1, "nothing more was sent: {entries:#?}");
    assert_eq!(entries[0]["outcome"]["result"], "applied", "{entries:#?}");

    let out = kmsdns(&["undo", "1", "--config", inv]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    site.lab.wait_converged("corp.test");
    assert_eq!(site.targets(1), vec!["dead.corp.test", "kms1.corp.test"]);
}

/// An intent without its outcome (kmsdns was killed between the two) is unknown; once the
/// servers show it was not made, it is settled as not applied, and undo refuses it.
#[test]
fn an_interrupted_change_the_servers_never_saw_is_settled_as_not_applied() {
    let site = Site::new();
    let inv = site.inventory(site.lab.servers[0].addr);
    let inv = inv.to_str().unwrap();
    let state = site.dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    // Intent: remove dead (the RRset as it is now is its "before").
    std::fs::write(
        state.join("journal.jsonl"),
        r#"{"phase":"intent","id":1,"time":"2026-11-28T10:00:00Z","zone":"corp.test","server":"127.0.0.1:53","before":[{"target":"dead.corp.test","port":1688,"priority":0,"weight":0,"ttl":600},{"target":"kms1.corp.test","port":1688,"priority":0,"weight":0,"ttl":600}],"after":[{"target":"kms1.corp.test","port":1688,"priority":0,"weight":0,"ttl":600}],"reasons":[]}"#
            .to_string()
            + "\n",
    )
    .unwrap();
    assert_eq!(journal(inv)[0]["outcome"]["result"], "unknown");
    // A dry run writes nothing, so it settles nothing either.
    let out = kmsdns(&["repair", "--config", inv]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("dead.corp.test"), "{}", show(&out));
    assert_eq!(journal(inv)[0]["outcome"]["result"], "unknown");
    let out = kmsdns(&["undo", "1", "--config", inv]);
    assert_ne!(out.status.code(), Some(0), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not applied"), "{}", show(&out));
    assert_eq!(journal(inv)[0]["outcome"]["result"], "not-applied");
}

/// Another writer changes the RRset right after our update. Waiting for the exact RRset we
/// wrote made a repair that succeeded wait the whole propagation timeout and exit 2 "LAGGING".
#[test]
fn a_change_another_writer_moved_on_is_verified_not_lagging() {
    let site = Site::new();
    let (primary, key) = (site.lab.servers[0].addr, site.lab.key.file.clone());
    let relay = LostAnswerRelay::then_run(primary, move || {
        let add = "update add _vlmcs._tcp.corp.test. 600 IN SRV 10 0 1688 kms1.corp.test.";
        support::nsupdate(primary, &key, "corp.test", &[add]).expect("the other writer's update");
    });
    let inv = site.inventory(relay.addr);
    let out = kmsdns(&["repair", "--apply", "--config", inv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("the change is visible on every server") && stdout.contains("changed since"), "{stdout}");
    assert!(!stdout.contains("LAGGING"), "{stdout}");
    site.lab.wait_converged("corp.test");
    assert_eq!(site.lab.dig(1, "_vlmcs._tcp.corp.test", "SRV").len(), 2, "ours gone, theirs kept");
}

/// A primary that answers NOERROR and applies nothing (PowerDNS with a refusing update
/// policy): the change was not applied, the journal says so, and the exit code is 2.
#[test]
fn a_noerror_the_primary_itself_does_not_show_is_not_applied() {
    let ((kms1, port), (dead, _)) = (loopback_ip(), loopback_ip());
    let _kms = KmsResponder::from_listener(port, Behaviour::Kms).expect("start a KMS responder");
    let zone = RogueZone::new("corp.test")
        .a("kms1", kms1)
        .a("dead", dead)
        .srv("kms1.corp.test", 600)
        .srv("dead.corp.test", 600);
    let rogue = RogueDns::start(zone, Box::new(|_, _, _, _| None));
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("kmsdns.toml");
    std::fs::write(
        &inv,
        format!(
            "[defaults]\ntimeout = \"1s\"\nretries = 0\npropagation_timeout = \"1s\"\nconfirm_window = \"0s\"\n\n[daemon]\nstate_dir = \"{}\"\n\n[[zone]]\nname = \"corp.test\"\nservers = [\"{rogue}\"]\nprimary = \"{rogue}\"\nallow_unsigned = true\npolicy = \"repair\"\n\n[[host]]\nname = \"kms1.corp.test\"\nzones = [\"corp.test\"]\nstate = \"active\"\n",
            dir.path().join("state").display(),
            rogue = rogue.addr
        ),
    )
    .unwrap();
    let inv = inv.to_str().unwrap();
    let out = kmsdns(&["repair", "--apply", "--config", inv]);
    assert_eq!(rogue.asked().updates, 1, "{}", show(&out));
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("did not apply the update"), "{stdout}");
    let entries = journal(inv);
    assert_eq!(entries[0]["outcome"]["result"], "not-applied", "{entries:#?}");
    let out = kmsdns(&["undo", "1", "--config", inv]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not applied"), "{}", show(&out));
}
