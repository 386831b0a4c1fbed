//! Repair against real BIND 9 with TSIG: what an admin runs and what the servers then say.

mod support;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use kmsdns::demo::responder::{Behaviour, KmsResponder};
use serde_json::Value;
use support::run::{kmsdns, show};
use support::{BindLab, ZoneSpec, free_port, loopback_ip};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A corp.test zone on a primary and a secondary: kms1 healthy, kms2 dead, old decommissioned
/// (and still answering), kms3 healthy but unpublished.
struct Site {
    lab: BindLab,
    _responders: Vec<KmsResponder>,
    state: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        Self::with_lab(BindLab::primary_secondary)
    }

    fn with_lab(make: impl Fn(&[ZoneSpec]) -> BindLab) -> Site {
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
        let lab = make(&[zone]);
        Site { lab, _responders: responders, state: tempfile::tempdir().expect("state dir") }
    }

    fn servers(&self) -> String {
        self.lab.servers.iter().map(|s| format!("\"{}\"", s.addr)).collect::<Vec<_>>().join(", ")
    }

    /// Writes an inventory whose zone has `settings` (primary, key, policy...) and returns its path.
    fn inventory(&self, settings: &str, key: &Path) -> PathBuf {
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
name = "{key_name}"
algorithm = "hmac-sha256"
secret_file = "{key}"

[[zone]]
name = "corp.test"
servers = [{servers}]
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
            key_name = key_name(key),
            key = key.display(),
            servers = self.servers(),
        );
        std::fs::write(&path, text).expect("write inventory");
        path
    }

    fn repair_settings(&self) -> String {
        format!("primary = \"{}\"\nupdate_key = \"kmsdns-test\"\npolicy = \"repair\"", self.lab.servers[0].addr)
    }

    fn srv(&self, idx: usize) -> Vec<String> {
        self.lab.dig(idx, "_vlmcs._tcp.corp.test", "SRV")
    }

    /// Lines of a server's log that record an UPDATE it received: BIND logs each RR it changes
    /// ("updating zone 'corp.test/IN': ...") and each refusal ("update 'corp.test/IN' denied",
    /// "update unsuccessful", "update failed").
    fn updates_logged(&self, idx: usize) -> usize {
        self.lab.servers[idx].log().lines().filter(|l| l.contains("updat") && l.contains("corp.test")).count()
    }
}

/// The key name inside a BIND key file (or "kmsdns-test" for a bare secret).
fn key_name(path: &Path) -> String {
    let t = std::fs::read_to_string(path).unwrap_or_default();
    t.split('"').nth(1).filter(|_| t.trim_start().starts_with("key")).unwrap_or("kmsdns-test").to_string()
}

/// A key file with `name` and a secret the server does not have.
fn foreign_key(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.key"));
    let secret = "bm90LXRoZS1zZXJ2ZXJzLXNlY3JldC1ub3QtYXQtYWxsLTAxMjM0NTY3ODk=";
    std::fs::write(&path, format!("key \"{name}\" {{ algorithm hmac-sha256; secret \"{secret}\"; }};\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", show(o)))
}

const HEALED: [&str; 2] = ["0 0 1688 kms1.corp.test.", "0 0 1688 kms3.corp.test."];

#[test]
fn repair_fixes_the_zone_in_one_update_on_every_server_and_then_has_nothing_to_do() {
    let site = Site::new();
    let inv = site.inventory(&site.repair_settings(), &site.lab.key.file);
    let inv = inv.to_str().unwrap();

    let out = kmsdns(&["repair", "--apply", "--config", inv]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("- SRV 0 0 1688 kms2.corp.test.   (stale-dead)"), "{stdout}");
    assert!(stdout.contains("- SRV 0 0 1688 old.corp.test.   (stale-decommissioned)"), "{stdout}");
    assert!(stdout.contains("+ SRV 0 0 1688 kms3.corp.test.   (missing-record)"), "{stdout}");
    assert!(stdout.contains("every server serves the new RRset"), "{stdout}");
    assert_eq!(site.srv(0), HEALED);
    assert_eq!(site.srv(1), HEALED);
    // One UPDATE: the serial moved by exactly one, and the server logged it.
    assert_eq!(site.lab.serial(0, "corp.test"), Some(2));
    assert!(site.updates_logged(0) > 0, "the log marker for updates must see this one:\n{}", site.lab.servers[0].log());

    // Idempotent: the second run finds nothing to do and sends nothing.
    let logged = site.updates_logged(0);
    let out = kmsdns(&["repair", "--apply", "--config", inv, "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(json(&out)["zones"][0]["result"]["result"], "nothing-to-do");
    assert_eq!(site.lab.serial(0, "corp.test"), Some(2));
    assert_eq!(site.updates_logged(0), logged);
    // Clean, but for the dead active host: it stays a finding until it is back.
    let audit = kmsdns(&["audit", "--config", inv]);
    assert_eq!(audit.status.code(), Some(1), "{}", show(&audit));
    assert!(text(&audit.stdout).contains("WARNING  active-host-down: kms2.corp.test"), "{}", show(&audit));
    assert!(text(&audit.stdout).contains("0 critical, 1 warning"), "{}", show(&audit));
}

#[test]
fn a_dry_run_sends_nothing() {
    let site = Site::new();
    let inv = site.inventory(&site.repair_settings(), &site.lab.key.file);
    let out = kmsdns(&["repair", "--config", inv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(text(&out.stdout).contains("would apply: run `kmsdns repair --apply`"), "{}", show(&out));
    // The server saw no UPDATE, its data is untouched, and no journal was written.
    assert_eq!(site.updates_logged(0), 0, "{}", site.lab.servers[0].log());
    assert_eq!(site.lab.serial(0, "corp.test"), Some(1));
    assert_eq!(site.srv(0).len(), 3);
    assert!(!site.state.path().join("state").exists());
}

#[test]
fn an_undo_restores_the_rrset_and_is_journaled() {
    let site = Site::new();
    let inv = site.inventory(&site.repair_settings(), &site.lab.key.file);
    let inv = inv.to_str().unwrap();
    let before = site.srv(0);
    let out = kmsdns(&["repair", "--apply", "--config", inv]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(site.srv(1), HEALED);

    let out = kmsdns(&["undo", "1", "--config", inv]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(text(&out.stdout).contains("every server serves the restored RRset"), "{}", show(&out));
    assert_eq!(site.srv(0), before);
    assert_eq!(site.srv(1), before);

    let out = kmsdns(&["journal", "--config", inv, "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let entries = json(&out);
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1]["undo_of"], 1);
    assert_eq!(entries[1]["outcome"]["result"], "applied");
    let table = text(&kmsdns(&["journal", "--config", inv]).stdout);
    assert!(table.contains("-kms2.corp.test -old.corp.test +kms3.corp.test"), "{table}");
    assert!(table.contains("(undo of 1)"), "{table}");
    // The journal holds no secret.
    let secret = std::fs::read_to_string(&site.lab.key.file).unwrap();
    let secret = secret.split("secret \"").nth(1).unwrap().split('"').next().unwrap();
    let journal = std::fs::read_to_string(site.state.path().join("state/journal.jsonl")).unwrap();
    assert!(!journal.contains(secret));

    // Undoing the first change again would clobber the undo: refused.
    let out = kmsdns(&["undo", "1", "--config", inv]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(text(&out.stdout).contains("REFUSED"), "{}", show(&out));
    assert_eq!(site.srv(0), before);
}

#[test]
fn each_update_error_says_what_to_fix() {
    let site = Site::new();
    let dir = site.state.path();
    let primary = site.lab.servers[0].addr;
    let secondary = site.lab.servers[1].addr;
    let settings = |primary: SocketAddr, key: &str| {
        format!("primary = \"{primary}\"\nupdate_key = \"{key}\"\npolicy = \"repair\"")
    };
    let xfer_key = site.lab.dir.path().join("kmsdns-xfer.key");
    let cases: Vec<(&str, String, PathBuf, &str)> = vec![
        (
            "wrong secret",
            settings(primary, "kmsdns-test"),
            foreign_key(dir, "kmsdns-test"),
            "NOTAUTH, TSIG error BADSIG",
        ),
        ("unknown key", settings(primary, "nosuchkey"), foreign_key(dir, "nosuchkey"), "NOTAUTH, TSIG error BADKEY"),
        ("a key the zone does not allow", settings(primary, "kmsdns-xfer"), xfer_key, "REFUSED"),
        ("an update sent to the secondary", settings(secondary, "kmsdns-test"), site.lab.key.file.clone(), "REFUSED"),
        (
            "an unsigned update",
            format!("primary = \"{primary}\"\nallow_unsigned = true\npolicy = \"repair\""),
            site.lab.key.file.clone(),
            "the server takes no unsigned updates",
        ),
    ];
    for (what, zone_settings, key, want) in cases {
        let inv = site.inventory(&zone_settings, &key);
        let out = kmsdns(&["repair", "--apply", "--config", inv.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{what}: {}", show(&out));
        // The report wraps long lines; compare the words.
        let stdout = text(&out.stdout).split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(stdout.contains("FAILED") && stdout.contains(want), "{what}: {}", show(&out));
        assert_eq!(site.srv(0).len(), 3, "{what}: nothing changed");
        let secret = std::fs::read_to_string(&key).unwrap();
        let secret = secret.split("secret \"").nth(1).unwrap().split('"').next().unwrap();
        assert!(!stdout.contains(secret) && !text(&out.stderr).contains(secret), "{what}: a secret leaked");
    }
    // The journal recorded each refused attempt with the server's answer.
    let out = kmsdns(&["journal", "--config", dir.join("kmsdns.toml").to_str().unwrap()]);
    let table = text(&out.stdout);
    assert!(table.contains("not applied (NOTAUTH (BADSIG))"), "{table}");
    assert!(table.contains("not applied (REFUSED)"), "{table}");
}

#[test]
fn a_secret_file_others_can_read_is_refused() {
    let site = Site::new();
    let key = foreign_key(site.state.path(), "kmsdns-test");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let inv = site.inventory(&site.repair_settings(), &key);
    let out = kmsdns(&["check-config", "--config", inv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(text(&out.stderr).contains("readable by group or others (mode 0644)"), "{}", show(&out));
    let out = kmsdns(&["repair", "--apply", "--config", inv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(text(&out.stdout).contains("chmod 600"), "{}", show(&out));
    assert_eq!(site.updates_logged(0), 0);
}

#[test]
fn safety_rails_hold_changes_back_and_say_why() {
    // An unreachable third server: nothing is planned for the zone.
    let site = Site::new();
    let dead = format!("127.0.0.1:{}", free_port());
    let mut inv_text = std::fs::read_to_string(site.inventory(&site.repair_settings(), &site.lab.key.file)).unwrap();
    inv_text = inv_text.replacen(
        &format!("servers = [{}]", site.servers()),
        &format!("servers = [{}, \"{dead}\"]", site.servers()),
        1,
    );
    let inv = site.state.path().join("unreachable.toml");
    std::fs::write(&inv, inv_text).unwrap();
    let out = kmsdns(&["repair", "--apply", "--config", inv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(text(&out.stdout).contains(&format!("not planned: {dead} could not be read")), "{}", show(&out));
    assert_eq!(site.updates_logged(0), 0);

    // max_deletes = 1: only the dead host's record goes this run.
    let inv = site.inventory(&format!("{}\nmax_deletes = 1", site.repair_settings()), &site.lab.key.file);
    let out = kmsdns(&["repair", "--apply", "--config", inv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(text(&out.stdout).contains("held back: at most max_deletes = 1"), "{}", show(&out));
    assert_eq!(site.srv(0), ["0 0 1688 kms1.corp.test.", "0 0 1688 kms3.corp.test.", "0 0 1688 old.corp.test."]);

    // policy = "audit": the plan is shown, never applied.
    let site = Site::new();
    let settings =
        format!("primary = \"{}\"\nupdate_key = \"kmsdns-test\"\npolicy = \"audit\"", site.lab.servers[0].addr);
    let inv = site.inventory(&settings, &site.lab.key.file);
    let out = kmsdns(&["repair", "--apply", "--config", inv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(text(&out.stdout).contains("shown, not applied: the zone's policy is \"audit\""), "{}", show(&out));
    assert_eq!(site.updates_logged(0), 0);
}

#[test]
fn divergent_servers_are_not_repaired() {
    let site = Site::with_lab(|z| BindLab::independent_primaries(z, 2));
    site.lab.update(1, "corp.test", &["update delete _vlmcs._tcp.corp.test. SRV 0 0 1688 old.corp.test."]);
    let inv = site.inventory(&site.repair_settings(), &site.lab.key.file);
    let out = kmsdns(&["repair", "--apply", "--config", inv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(text(&out.stdout).contains("the zone's servers disagree"), "{}", show(&out));
    assert_eq!(site.srv(0).len(), 3);
}

#[test]
fn a_concurrent_change_is_never_clobbered() {
    let site = Site::new();
    let inv_path = site.inventory(&site.repair_settings(), &site.lab.key.file);
    let inv = inv_path.to_str().unwrap();
    // The admin reviews a plan...
    let plan = site.state.path().join("plan.json");
    let out = kmsdns(&["plan", "--config", inv, "--out", plan.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    // ...meanwhile another writer publishes kms3 itself.
    site.lab.update(0, "corp.test", &["update add _vlmcs._tcp.corp.test. 600 IN SRV 0 0 1688 kms3.corp.test."]);
    site.lab.wait_converged("corp.test");
    // The reviewed plan no longer matches the world: refused, nothing sent.
    let out = kmsdns(&["apply", plan.to_str().unwrap(), "--config", inv]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(text(&out.stderr).contains("refused"), "{}", show(&out));
    assert_eq!(site.srv(0).len(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_between_observation_and_update_is_retried_from_what_is_there() {
    use kmsdns::apply::Mode;
    use kmsdns::cycle::ZoneResult;
    let site = Site::new();
    let inv = kmsdns::inventory::Inventory::load(&site.inventory(&site.repair_settings(), &site.lab.key.file)).unwrap();
    let obs = kmsdns::observe::observe(&inv).await;
    let findings = kmsdns::audit::audit(&inv, &obs);
    let plan = kmsdns::plan::plan(&inv, &obs, &findings);
    // Another writer removes the decommissioned host after we looked.
    site.lab.update(0, "corp.test", &["update delete _vlmcs._tcp.corp.test. SRV 0 0 1688 old.corp.test."]);
    site.lab.wait_converged("corp.test");
    let journal = kmsdns::journal::Journal::open(&site.state.path().join("state")).unwrap();
    let outcomes = kmsdns::cycle::carry::carry_out(&inv, &obs, plan, Mode::Apply(&journal)).await;
    let o = &outcomes[0];
    assert!(matches!(o.result, ZoneResult::Applied { attempts: 2, .. }), "{o:#?}");
    assert_eq!(site.srv(0), HEALED);
    // The first attempt is journaled as refused by its prerequisite.
    let entries = journal.entries().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].outcome.as_ref().unwrap().answer, "NXRRSET");
    assert_eq!(entries[1].outcome.as_ref().unwrap().result, kmsdns::journal::Applied::Applied);
}

#[test]
fn an_interrupted_change_is_reported_at_the_next_start() {
    let site = Site::new();
    let inv = site.inventory(&site.repair_settings(), &site.lab.key.file);
    let state = site.state.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(
        state.join("journal.jsonl"),
        r#"{"phase":"intent","id":1,"time":"2026-11-28T10:00:00Z","zone":"corp.test","server":"127.0.0.1:53","before":[],"after":[],"reasons":[]}"#
            .to_string()
            + "\n",
    )
    .unwrap();
    let out = kmsdns(&["journal", "--config", inv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(text(&out.stderr).contains("journal entry 1 (zone corp.test"), "{}", show(&out));
    assert!(text(&out.stdout).contains("outcome unknown (kmsdns stopped"), "{}", show(&out));
    // Reported once.
    let out = kmsdns(&["journal", "--config", inv.to_str().unwrap()]);
    assert!(text(&out.stderr).is_empty(), "{}", show(&out));
}
