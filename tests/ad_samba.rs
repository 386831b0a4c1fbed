//! Active Directory end to end, against a real Samba AD DC in a private network namespace:
//! the "only the first KMS host can update the record" problem, found by the audit, fixed by
//! `kmsdns repair --acl`, undone by `kmsdns undo`; the tombstone trap; a record made by hand.
//! Needs root (the harness creates the namespace).

mod support;

use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;
use support::SambaLab;

const VLMCS: &str = "_vlmcs._tcp.corp.test";

fn srv_add(host: &str) -> String {
    format!("update add {VLMCS}. 3600 IN SRV 0 0 1688 {host}.corp.test.")
}

/// Runs the kmsdns binary inside the lab's namespace, where the DC is.
fn kmsdns(lab: &SambaLab, args: &[&str]) -> Output {
    lab.command(env!("CARGO_BIN_EXE_kmsdns")).args(args).env_remove("RUST_LOG").output().expect("run kmsdns in the lab")
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", show(o)))
}

/// (code, target) of every finding.
fn findings(v: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["code"].as_str().unwrap().to_string(), f["target"].as_str().unwrap_or("").to_string()))
        .collect();
    out.sort();
    out
}

fn has(v: &Value, code: &str, target: &str) -> bool {
    findings(v).contains(&(code.to_string(), target.to_string()))
}

/// KMS stand-ins listening inside the lab's namespace, next to the DC; stopped on drop.
struct Responders(#[allow(dead_code)] Vec<kmsdns::demo::responder::KmsResponder>);

impl Responders {
    fn start(lab: &SambaLab, addrs: &[&str]) -> Responders {
        let addrs: Vec<std::net::SocketAddr> = addrs.iter().map(|a| a.parse().expect("an address:port")).collect();
        Responders(lab.in_netns(move || {
            addrs
                .into_iter()
                .map(|a| kmsdns::demo::responder::KmsResponder::up(a).expect("start a KMS responder"))
                .collect()
        }))
    }
}

/// The DC with KMS1$ and KMS2$ (both in KMS-Hosts), their A records and KMS stand-ins.
fn estate() -> (SambaLab, Responders) {
    let lab = SambaLab::start();
    lab.add_kms_accounts();
    for (host, ip) in [("kms1", "127.0.0.21"), ("kms2", "127.0.0.22")] {
        lab.samba_tool(&["dns", "add", "127.0.0.10", "corp.test", host, "A", ip]);
    }
    let responders = Responders::start(&lab, &["127.0.0.21:1688", "127.0.0.22:1688"]);
    (lab, responders)
}

fn inventory(lab: &SambaLab, url: &str) -> PathBuf {
    let path = lab.dir.path().join("kmsdns.toml");
    let text = format!(
        r#"[defaults]
timeout = "2s"
retries = 1

[daemon]
state_dir = "{state}"

[ad]
urls = ["{url}"]
ca_file = "{ca}"
bind_dn = "{bind_dn}"
password_file = "{password}"
kms_group = "KMS-Hosts"

[[zone]]
name = "corp.test"
servers = ["127.0.0.10"]

[[host]]
name = "kms1.corp.test"
zones = ["corp.test"]
state = "active"
account = "KMS1$"

[[host]]
name = "kms2.corp.test"
zones = ["corp.test"]
state = "active"
account = "KMS2$"
"#,
        state = lab.dir.path().join("state").display(),
        ca = lab.ca_file().display(),
        bind_dn = lab.admin_bind_dn(),
        password = lab.admin_password_file().display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_acl_that_blocks_the_second_kms_host_is_found_fixed_and_undone() {
    let (lab, _kms) = estate();
    let cc1 = lab.kinit("KMS1$", "KMS1Passw0rd!");
    assert_eq!(lab.nsupdate_gss(&cc1, &[&srv_add("kms1")]), "NOERROR");
    let cc2 = lab.kinit("KMS2$", "KMS2Passw0rd!");
    assert_eq!(lab.nsupdate_gss(&cc2, &[&srv_add("kms2")]), "SERVFAIL", "KMS2$ is refused before the fix");

    let inv = inventory(&lab, &lab.ldaps_url());
    let inv = inv.to_str().unwrap();
    let out = kmsdns(&lab, &["audit", "--config", inv, "--format", "json"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let v = json(&out);
    assert!(has(&v, "update-blocked-acl", "kms2.corp.test"), "{:?}", findings(&v));
    assert!(!has(&v, "update-blocked-acl", "kms1.corp.test"), "the owner may update: {:?}", findings(&v));
    assert!(has(&v, "missing-record", "kms2.corp.test"), "{:?}", findings(&v));
    assert!(has(&v, "zone-secure-only", ""), "{:?}", findings(&v));
    let blocked = v["findings"].as_array().unwrap().iter().find(|f| f["code"] == "update-blocked-acl").unwrap();
    let message = blocked["message"].as_str().unwrap();
    assert!(message.contains("owned by KMS1$"), "{message}");
    assert!(message.contains("(A;;RPLCLORC;;;WD)"), "{message}");

    // The dry run shows the ACE and changes nothing.
    let out = kmsdns(&lab, &["repair", "--acl", "--override-policy", "--config", inv]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("would apply"), "{}", show(&out));
    assert_eq!(lab.nsupdate_gss(&cc2, &[&srv_add("kms2")]), "SERVFAIL", "still refused after a dry run");

    // The zone's policy is "audit" (the default): nothing is written without the operator's word.
    let out = kmsdns(&lab, &["repair", "--acl", "--apply", "--config", inv]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("not applied: zone corp.test has policy = \"audit\""),
        "{}",
        show(&out)
    );
    assert_eq!(lab.nsupdate_gss(&cc2, &[&srv_add("kms2")]), "SERVFAIL", "still refused: nothing was written");

    let out = kmsdns(&lab, &["repair", "--acl", "--apply", "--override-policy", "--config", inv]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("members of 'KMS-Hosts' may now update the record"), "{}", show(&out));

    // KMS2$'s own update now goes through, and the audit is content.
    assert_eq!(lab.nsupdate_gss(&cc2, &[&srv_add("kms2")]), "NOERROR", "KMS2$ after the fix");
    assert_eq!(lab.dig(VLMCS, "SRV"), ["0 0 1688 kms1.corp.test.", "0 0 1688 kms2.corp.test."]);
    let v = json(&kmsdns(&lab, &["audit", "--config", inv, "--format", "json"]));
    assert!(!has(&v, "update-blocked-acl", "kms2.corp.test"), "{:?}", findings(&v));

    // Undo puts the old DACL back: KMS2$ is blocked again.
    let out = kmsdns(&lab, &["undo", "1", "--override-policy", "--config", inv]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let v = json(&kmsdns(&lab, &["audit", "--config", inv, "--format", "json"]));
    assert!(has(&v, "update-blocked-acl", "kms2.corp.test"), "{:?}", findings(&v));
    let journal = String::from_utf8_lossy(&kmsdns(&lab, &["journal", "--config", inv]).stdout).to_string();
    assert!(journal.contains("DACL of DC=_vlmcs._tcp,DC=corp.test"), "{journal}");
    assert!(journal.contains("(undo of 1)"), "{journal}");
    assert!(!journal.contains(&lab.admin_password), "no secret in the journal");
}

#[test]
fn a_tombstoned_node_still_blocks_and_a_record_made_by_hand_is_static() {
    let (lab, _kms) = estate();
    // An administrator creates the record by hand: static, and owned by the administrator.
    lab.samba_tool(&["dns", "add", "127.0.0.10", "corp.test", "_vlmcs._tcp", "SRV", "kms1.corp.test 1688 0 0"]);
    let inv = inventory(&lab, &lab.ldaps_ip_url());
    let inv = inv.to_str().unwrap();
    let v = json(&kmsdns(&lab, &["audit", "--config", inv, "--format", "json"]));
    assert!(has(&v, "static-record", "kms1.corp.test"), "{:?}", findings(&v));
    assert!(has(&v, "update-blocked-acl", "kms1.corp.test"), "{:?}", findings(&v));
    assert!(has(&v, "update-blocked-acl", "kms2.corp.test"), "{:?}", findings(&v));

    // Every record deleted by a dynamic update: DNS says NXDOMAIN, but the node and its owner
    // stay as a tombstone (test-labs.md §2.6).
    let admin = lab.kinit("Administrator", &lab.admin_password);
    assert_eq!(lab.nsupdate_gss(&admin, &[&format!("update delete {VLMCS}. SRV")]), "NOERROR");
    assert!(lab.dig(VLMCS, "SRV").is_empty());
    let v = json(&kmsdns(&lab, &["audit", "--config", inv, "--format", "json"]));
    assert!(has(&v, "tombstoned-owner", ""), "{:?}", findings(&v));
    assert!(has(&v, "update-blocked-acl", "kms2.corp.test"), "{:?}", findings(&v));
    let cc2 = lab.kinit("KMS2$", "KMS2Passw0rd!");
    assert_eq!(lab.nsupdate_gss(&cc2, &[&srv_add("kms2")]), "SERVFAIL", "the tombstone trap is real");
}

#[test]
fn a_directory_that_cannot_be_read_is_a_finding() {
    let (lab, _kms) = estate();
    let inv = inventory(&lab, "ldaps://127.0.0.99");
    let out = kmsdns(&lab, &["audit", "--config", inv.to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let v = json(&out);
    assert!(has(&v, "ad-unreachable", ""), "{:?}", findings(&v));
}

/// schemaIDGUIDs (MS-ADA3, MS-ADA1) of the attributes an administrator hides below.
const TOKEN_GROUPS: &str = "b7c69e6d-2cc7-11d2-854e-00a0c983f608";
const DNS_PROPERTY: &str = "675a15fe-3b70-11d2-90cc-00c04fd91ab1";

#[test]
fn what_the_bind_account_may_not_read_is_reported_not_judged_from_defaults() {
    let (lab, _kms) = estate();
    let cc1 = lab.kinit("KMS1$", "KMS1Passw0rd!");
    assert_eq!(lab.nsupdate_gss(&cc1, &[&srv_add("kms1")]), "NOERROR");
    let inv = inventory(&lab, &lab.ldaps_url());
    let inv = inv.to_str().unwrap();
    let bind = lab.sid("Administrator");
    let audit = || json(&kmsdns(&lab, &["audit", "--config", inv, "--format", "json"]));

    // The bind account may not read KMS2$'s tokenGroups: no ACL verdict for kms2, but a
    // finding that says so (before, kms2 was silently left out).
    let kms2 = format!("--objectdn=CN=KMS2,CN=Computers,{}", lab.base_dn);
    lab.samba_tool(&["dsacl", "set", &kms2, &format!("--sddl=(OD;;RP;{TOKEN_GROUPS};;{bind})")]);
    let tokens_hidden = audit();
    // Nor may it read the zone's dNSProperty: no "dynamic updates are off" from the default.
    let zone = format!("--objectdn={}", lab.zone_dn());
    lab.samba_tool(&["dsacl", "set", &zone, &format!("--sddl=(OD;;RP;{DNS_PROPERTY};;{bind})")]);
    let settings_hidden = audit();
    let both = format!(
        "tokenGroups hidden: {:?}\ndNSProperty hidden too: {:?}",
        findings(&tokens_hidden),
        findings(&settings_hidden)
    );

    assert!(!has(&settings_hidden, "zone-updates-disabled", ""), "{both}");
    assert!(!has(&settings_hidden, "zone-secure-only", ""), "{both}");
    let settings = settings_hidden["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "ad-unreadable" && f["target"].is_null())
        .unwrap_or_else(|| panic!("{both}"));
    assert!(settings["message"].as_str().unwrap().contains("no dNSProperty"), "{settings}");

    assert!(has(&tokens_hidden, "zone-secure-only", ""), "{both}");
    assert!(!has(&tokens_hidden, "update-blocked-acl", "kms2.corp.test"), "{both}");
    let tokens = tokens_hidden["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "ad-unreadable" && f["target"] == "kms2.corp.test")
        .unwrap_or_else(|| panic!("{both}"));
    let message = tokens["message"].as_str().unwrap();
    assert!(message.contains("KMS2$") && message.contains("tokenGroups"), "{message}");
}
