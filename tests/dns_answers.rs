//! Servers that answer badly: an answer is evidence only for the question it answers, and a bad
//! one is *unknown*, reported as what it is, never as a timeout and never as "no records".
//!
//! The misbehaving peers are a scripted responder (tests/support/rogue.rs): real servers do not
//! give these answers. Where a real server is part of the scenario it is BIND.

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RecordType};
use kmsdns::demo::responder::{Behaviour, KmsResponder};
use serde_json::Value;
use support::run::{kmsdns, show};
use support::{BindLab, Reply, RogueDns, RogueZone, ZoneSpec, loopback_ip};

struct Site {
    _kms: Vec<KmsResponder>,
    ips: Vec<Ipv4Addr>,
    dir: tempfile::TempDir,
}

impl Site {
    /// `n` live KMS hosts kms1..kmsN.corp.test.
    fn new(n: usize) -> Site {
        let (ips, kms) = (0..n)
            .map(|_| {
                let (ip, port) = loopback_ip();
                (ip, KmsResponder::from_listener(port, Behaviour::Kms).expect("start a KMS responder"))
            })
            .unzip();
        Site { _kms: kms, ips, dir: tempfile::tempdir().expect("temp dir") }
    }

    /// The zone as the rogue serves it: the hosts' A records and an SRV record each.
    fn rogue_zone(&self) -> RogueZone {
        let mut z = RogueZone::new("corp.test");
        for (i, ip) in self.ips.iter().enumerate() {
            z = z.a(&format!("kms{}", i + 1), *ip).srv(&format!("kms{}.corp.test", i + 1), 600);
        }
        z
    }

    /// The same zone for BIND.
    fn bind_zone(&self) -> ZoneSpec {
        let mut z = ZoneSpec::new("corp.test");
        for (i, ip) in self.ips.iter().enumerate() {
            z = z
                .record(&format!("kms{} IN A {ip}", i + 1))
                .record(&format!("_vlmcs._tcp 600 IN SRV 0 0 1688 kms{}.corp.test.", i + 1));
        }
        z
    }

    /// An inventory of corp.test on `servers`, every host active; `extra` goes in the zone.
    fn inventory(&self, servers: &[SocketAddr], extra: &str) -> PathBuf {
        let servers: Vec<String> = servers.iter().map(|s| format!("\"{s}\"")).collect();
        let mut text = format!(
            "[defaults]\ntimeout = \"2s\"\nretries = 1\n\n[daemon]\nstate_dir = \"{}\"\n\n",
            self.dir.path().join("state").display()
        );
        text.push_str(&extra_keys(extra));
        text.push_str(&format!(
            "[[zone]]\nname = \"corp.test\"\nservers = [{}]\n{}\n\n",
            servers.join(", "),
            zone_keys(extra)
        ));
        for i in 1..=self.ips.len() {
            text.push_str(&format!(
                "[[host]]\nname = \"kms{i}.corp.test\"\nzones = [\"corp.test\"]\nstate = \"active\"\n\n"
            ));
        }
        let path = self.dir.path().join("kmsdns.toml");
        std::fs::write(&path, text).expect("write inventory");
        path
    }
}

/// `extra` is "KEYS || ZONE KEYS": top-level tables, then keys of the zone.
fn extra_keys(extra: &str) -> String {
    extra.split_once("||").map(|(k, _)| k.to_string()).unwrap_or_default()
}

fn zone_keys(extra: &str) -> String {
    extra.split_once("||").map(|(_, z)| z.to_string()).unwrap_or_else(|| extra.to_string())
}

fn audit_json(inv: &std::path::Path) -> (Option<i32>, Vec<Value>, String) {
    let out = kmsdns(&["--audit", "--format", "json", "--config", inv.to_str().unwrap()]);
    let report: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("JSON report: {e}\n{}", show(&out)));
    let findings = report["findings"].as_array().cloned().unwrap_or_default();
    (out.status.code(), findings, show(&out))
}

fn codes(findings: &[Value]) -> Vec<String> {
    findings.iter().map(|f| f["code"].as_str().unwrap_or("").to_string()).collect()
}

/// The first-listed server answers the address questions for another name. Taking that as "no
/// address" called both live hosts stale-unresolvable, and repair deleted every record.
#[test]
fn an_answer_to_another_question_is_not_evidence_and_deletes_nothing() {
    let site = Site::new(2);
    let rogue = RogueDns::start(
        site.rogue_zone(),
        Box::new(|_, rtype, _, _| {
            matches!(rtype, RecordType::A | RecordType::AAAA).then(|| {
                Reply::Bent(Box::new(|m| {
                    m.answers.clear();
                    m.queries[0].set_name(Name::from_ascii("elsewhere.corp.test.").unwrap());
                }))
            })
        }),
    );
    let lab = BindLab::independent_primaries(&[site.bind_zone()], 1);
    let bind = lab.servers[0].addr;
    let key = lab.key.file.clone();
    let inv = site.inventory(
        &[rogue.addr, bind],
        &format!(
            "[[key]]\nname = \"kmsdns-test\"\nalgorithm = \"hmac-sha256\"\nsecret_file = \"{}\"\n\n||primary = \"{bind}\"\nupdate_key = \"kmsdns-test\"\npolicy = \"repair\"",
            key.display()
        ),
    );

    let (_, findings, shown) = audit_json(&inv);
    assert!(!codes(&findings).contains(&"stale-unresolvable".to_string()), "{shown}");

    let out = kmsdns(&["repair", "--apply", "--config", inv.to_str().unwrap()]);
    let srv = lab.dig(0, "_vlmcs._tcp.corp.test", "SRV");
    assert_eq!(srv.len(), 2, "both live hosts stay published: {srv:?}\n{}", show(&out));
}

/// Over TCP a truncated answer is not the RRset: the server is unreadable, not missing a record.
#[test]
fn a_truncated_answer_over_tcp_is_malformed_not_a_smaller_rrset() {
    let site = Site::new(2);
    let rogue = RogueDns::start(
        site.rogue_zone(),
        Box::new(|_, rtype, tcp, _| {
            (rtype == RecordType::SRV).then(|| {
                Reply::Bent(Box::new(move |m| {
                    m.metadata.truncation = true;
                    if tcp {
                        m.answers.truncate(1);
                    } else {
                        m.answers.clear();
                    }
                }))
            })
        }),
    );
    let inv = site.inventory(&[rogue.addr], "");
    let (_, findings, shown) = audit_json(&inv);
    let unreachable: Vec<&Value> = findings.iter().filter(|f| f["code"] == "server-unreachable").collect();
    assert_eq!(unreachable.len(), 1, "{shown}");
    assert!(unreachable[0]["message"].as_str().unwrap().contains("TC=1"), "{shown}");
    assert!(!codes(&findings).contains(&"missing-record".to_string()), "{shown}");
    assert!(rogue.asked().over_tcp >= 1, "the truncated answer was asked again over TCP");
}

/// Garbage, a compression pointer loop, an RDLENGTH past the end: each is reported as a
/// malformed answer, not as silence.
#[test]
fn malformed_answers_are_reported_as_malformed_not_as_timeouts() {
    // After the ID: flags QR AA, 1 question, 0 answers; the question's name a pointer to itself.
    let pointer_loop = vec![0x84, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 33, 0, 1];
    // Flags QR AA, 1 question, 1 answer: the question, then an SRV whose RDLENGTH says 200 bytes.
    let mut past_end = vec![0x84, 0x00, 0, 1, 0, 1, 0, 0, 0, 0];
    for label in ["_vlmcs", "_tcp", "corp", "test"] {
        past_end.push(label.len() as u8);
        past_end.extend_from_slice(label.as_bytes());
    }
    past_end.extend_from_slice(&[0, 0, 33, 0, 1]);
    past_end.extend_from_slice(&[0xc0, 0x0c, 0, 33, 0, 1, 0, 0, 2, 88, 0, 200, 0, 0, 0, 0, 6, 0x90]);
    let garbage = vec![0xde, 0xad, 0xbe, 0xef, 0x01];
    for (what, rest) in [("garbage", garbage), ("a pointer loop", pointer_loop), ("an RDLENGTH past the end", past_end)]
    {
        let site = Site::new(1);
        let bytes = rest.clone();
        let rogue = RogueDns::start(
            site.rogue_zone(),
            Box::new(move |_, rtype, _, _| (rtype == RecordType::SRV).then(|| Reply::RawAfterId(bytes.clone()))),
        );
        let inv = site.inventory(&[rogue.addr], "");
        let (code, findings, shown) = audit_json(&inv);
        let unreachable: Vec<&Value> = findings.iter().filter(|f| f["code"] == "server-unreachable").collect();
        assert_eq!(unreachable.len(), 1, "{what}: {shown}");
        let message = unreachable[0]["message"].as_str().unwrap();
        assert!(message.contains("malformed answer"), "{what}: {message}");
        assert!(!message.contains("timeout"), "{what}: {message}");
        assert_eq!(code, Some(2), "{what}: an unreadable zone is critical: {shown}");
    }
}

/// Windows Server 2008-era DNS answers FORMERR to EDNS: ask again without it, and remember.
#[test]
fn a_server_that_answers_formerr_to_edns_is_read_without_it() {
    let site = Site::new(1);
    let rogue = RogueDns::start(
        site.rogue_zone(),
        Box::new(|_, _, _, edns| {
            edns.then(|| {
                Reply::Bent(Box::new(|m| {
                    m.metadata.response_code = ResponseCode::FormErr;
                    m.metadata.authoritative = false;
                    m.queries.clear();
                    m.answers.clear();
                }))
            })
        }),
    );
    let inv = site.inventory(&[rogue.addr], "");
    let (code, findings, shown) = audit_json(&inv);
    assert_eq!(code, Some(0), "{shown}");
    assert!(findings.is_empty(), "{shown}");
    let asked = rogue.asked();
    // One read's SRV, SOA and shared-view TXT go out together with EDNS; after the first
    // FORMERR, nothing carries it.
    assert!(asked.with_edns <= 3, "asked with EDNS {} times of {}", asked.with_edns, asked.total);
    assert!(asked.total >= 6, "{asked:?}");
}

/// RFC 2181 §8: a TTL with the top bit set is 0.
#[test]
fn a_ttl_with_the_top_bit_set_counts_as_zero() {
    let site = Site::new(1);
    let (unknown, port) = loopback_ip();
    let _kms = KmsResponder::from_listener(port, Behaviour::Kms).expect("start a KMS responder");
    let zone = site.rogue_zone().a("stray", unknown).srv("stray.corp.test", 0x8000_0010);
    let rogue = RogueDns::start(zone, Box::new(|_, _, _, _| None));
    let inv = site.inventory(&[rogue.addr], "");
    let (_, findings, shown) = audit_json(&inv);
    let stray: Vec<&Value> = findings.iter().filter(|f| f["code"] == "stale-unknown-host").collect();
    assert_eq!(stray.len(), 1, "{shown}");
    assert_eq!(stray[0]["record"]["ttl"], 0, "{shown}");
}

/// An off-path forger who guesses a UDP ID says a live host's name does not exist. The delete
/// rests on that answer, so it is read again over TCP (which cannot be forged off-path) just
/// before the UPDATE: the name has its address there, and nothing is sent.
#[test]
fn the_evidence_for_a_delete_is_read_again_over_tcp_before_it_is_sent() {
    let site = Site::new(2);
    let rogue = RogueDns::start(
        site.rogue_zone(),
        Box::new(|name, rtype, tcp, _| {
            (name == "kms2.corp.test" && !tcp && matches!(rtype, RecordType::A | RecordType::AAAA)).then(|| {
                Reply::Bent(Box::new(|m| {
                    m.answers.clear();
                    m.metadata.response_code = ResponseCode::NXDomain;
                }))
            })
        }),
    );
    let inv = site
        .inventory(&[rogue.addr], &format!("primary = \"{}\"\nallow_unsigned = true\npolicy = \"repair\"", rogue.addr));
    let (_, findings, shown) = audit_json(&inv);
    assert!(codes(&findings).contains(&"stale-unresolvable".to_string()), "the audit believes UDP: {shown}");
    let out = kmsdns(&["repair", "--apply", "--config", inv.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(rogue.asked().updates, 0, "no UPDATE may be sent on a forged answer\n{}", show(&out));
    assert!(stdout.contains("kept: read again over TCP"), "{}", show(&out));
}
