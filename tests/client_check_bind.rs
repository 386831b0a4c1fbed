//! `kmsdns client-check` end to end: real BIND 9 as the recursive resolver a client asks, in
//! front of a real authoritative BIND, with KMS responders, a dead target (nothing listens:
//! refused) and a black-holed one (a listener whose backlog is full: every SYN is dropped).
//! Also `kmsdns explain`, which needs no DNS.

mod support;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Output;
use std::time::Duration;

use kmsdns::demo::responder::{Behaviour, KmsResponder};
use serde_json::Value;
use support::run::{kmsdns, show};
use support::{BindLab, Resolver, ZoneSpec, loopback_ip};

/// What the tests give as the client's connect timeout: what a black hole costs.
const CONNECT_TIMEOUT_MS: u64 = 700;

/// A loopback address with a listener on 1688 that never accepts, its accept queue filled:
/// Linux drops every further SYN (a listen overflow), so a connection is neither made nor
/// refused, as behind a firewall that drops. Checked before it is handed out.
struct BlackHole {
    ip: Ipv4Addr,
    _listener: TcpListener,
    _fillers: Vec<TcpStream>,
}

fn black_hole() -> BlackHole {
    let (ip, listener) = loopback_ip();
    let addr = SocketAddr::from((ip, support::KMS_PORT));
    // listen() on a listening socket sets its backlog anew: 0 leaves room for one connection.
    // SAFETY: a valid listening socket this function owns.
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0, "listen(fd, 0)");
    let mut fillers = Vec::new();
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Ok(s) => fillers.push(s),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break,
            Err(e) => panic!("filling the backlog of {addr}: {e}"),
        }
        assert!(fillers.len() <= 8, "{addr} keeps accepting connections: no black hole");
    }
    assert!(!fillers.is_empty(), "{addr} took no connection at all");
    BlackHole { ip, _listener: listener, _fillers: fillers }
}

struct World {
    lab: BindLab,
    resolver: Resolver,
    _kms: Vec<KmsResponder>,
    _hole: BlackHole,
}

impl World {
    /// corp.test: kms1 (up), dead (refused), hole (black hole) at priority 0, kms2 (up) at 10.
    /// clean.test: kms1 only. down.test: dead and hole only. empty.test: no _vlmcs._tcp.
    /// gone.test: forwarded to a server that does not serve it (the resolver answers SERVFAIL).
    fn new() -> World {
        let (ip1, l1) = loopback_ip();
        let (ip2, l2) = loopback_ip();
        let (dead, dead_listener) = loopback_ip();
        drop(dead_listener);
        let hole = black_hole();
        let kms = vec![
            KmsResponder::from_listener(l1, Behaviour::Kms).unwrap(),
            KmsResponder::from_listener(l2, Behaviour::Kms).unwrap(),
        ];
        let corp = ZoneSpec::new("corp.test")
            .record(&format!("kms1 IN A {ip1}"))
            .record(&format!("kms2 IN A {ip2}"))
            .record(&format!("dead IN A {dead}"))
            .record(&format!("hole IN A {}", hole.ip))
            .record("_vlmcs._tcp 600 IN SRV 0 0 1688 kms1.corp.test.")
            .record("_vlmcs._tcp 600 IN SRV 0 0 1688 dead.corp.test.")
            .record("_vlmcs._tcp 600 IN SRV 0 0 1688 hole.corp.test.")
            .record("_vlmcs._tcp 600 IN SRV 10 0 1688 kms2.corp.test.");
        let clean = ZoneSpec::new("clean.test").record("_vlmcs._tcp 300 IN SRV 0 0 1688 kms1.corp.test.");
        let down = ZoneSpec::new("down.test")
            .record("_vlmcs._tcp 300 IN SRV 0 0 1688 dead.corp.test.")
            .record("_vlmcs._tcp 300 IN SRV 0 0 1688 hole.corp.test.");
        let empty = ZoneSpec::new("empty.test");
        let lab = BindLab::independent_primaries(&[corp, clean, down, empty], 1);
        let auth = lab.servers[0].addr;
        let resolver = Resolver::forwarding(&[
            ("corp.test", auth),
            ("clean.test", auth),
            ("down.test", auth),
            ("empty.test", auth),
            ("gone.test", auth),
        ]);
        World { lab, resolver, _kms: kms, _hole: hole }
    }

    fn check(&self, domain: &str, format: &str) -> Output {
        let resolver = self.resolver.addr.to_string();
        let timeout = format!("{CONNECT_TIMEOUT_MS}ms");
        kmsdns(&["client-check", domain, "--resolver", &resolver, "--connect-timeout", &timeout, "--format", format])
    }

    fn json(&self, domain: &str) -> (Output, Value) {
        let out = self.check(domain, "json");
        let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", show(&out)));
        (out, v)
    }
}

fn names(v: &Value) -> BTreeSet<String> {
    v.as_array().expect("an array").iter().map(|n| n.as_str().expect("a name").to_string()).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_client_finds_the_working_host_and_every_stale_target_is_named_with_its_cost() {
    let w = World::new();
    let (out, v) = w.json("corp.test");
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert_eq!(v["schema"], 1);
    assert_eq!(v["owner"], "_vlmcs._tcp.corp.test");
    assert_eq!(v["resolver"]["addr"], w.resolver.addr.to_string());
    assert_eq!(v["resolver"]["from"], "--resolver");
    assert_eq!(v["srv"]["outcome"], "records", "{}", show(&out));
    assert_eq!(v["srv"]["records"].as_array().unwrap().len(), 4);
    let ttl1 = v["verdict"]["ttl_left"].as_u64().expect("a TTL left");
    assert!((590..=600).contains(&ttl1), "TTL left {ttl1}");

    // RFC 2782: priority 0's three targets in any of 6 orders, equally likely; then kms2.
    let order = v["order"].as_array().unwrap();
    assert_eq!(order.len(), 2);
    assert_eq!((order[0]["priority"].as_u64(), order[0]["orders"].as_u64()), (Some(0), Some(6)));
    assert_eq!(order[0]["equal_weights"], true);
    assert_eq!(order[1]["priority"], 10);
    assert_eq!(order[1]["targets"][0]["target"], "kms2.corp.test");

    // Every target probed, in one order a client could take: priority 0 first.
    let targets = v["targets"].as_array().unwrap();
    let probed: Vec<&str> = targets.iter().map(|t| t["target"].as_str().unwrap()).collect();
    assert_eq!(probed.last(), Some(&"kms2.corp.test"), "{probed:?}");
    let target = |n: &str| targets.iter().find(|t| t["target"] == n).unwrap_or_else(|| panic!("{n} not probed"));
    let hole = &target("hole.corp.test")["addresses"][0];
    assert_eq!((hole["state"].as_str(), hole["silent"].as_bool()), (Some("down"), Some(true)), "{hole}");
    // One connect timeout: probed once, as a client tries it, never retried.
    let lost = hole["lost_ms"].as_u64().unwrap();
    assert!((CONNECT_TIMEOUT_MS..2 * CONNECT_TIMEOUT_MS).contains(&lost), "a black hole cost {lost} ms");
    let dead = &target("dead.corp.test")["addresses"][0];
    assert_eq!((dead["state"].as_str(), dead["silent"].as_bool()), (Some("down"), Some(false)), "{dead}");
    assert!(dead["lost_ms"].as_u64().unwrap() < 200, "a refusal cost {dead}");
    assert_eq!(target("kms1.corp.test")["works"], true);
    assert_eq!(target("kms2.corp.test")["works"], true);

    // The verdict: kms1 first; the worst case pays the black hole (and the refusal); both are stale.
    let verdict = &v["verdict"];
    assert_eq!(names(&verdict["first"]), set(&["kms1.corp.test"]));
    assert_eq!(verdict["first_priority"], 0);
    assert!(verdict["best_case_ms"].as_u64().unwrap() < 200, "{verdict}");
    let worst = verdict["worst_case_ms"].as_u64().unwrap();
    assert!((CONNECT_TIMEOUT_MS..2 * CONNECT_TIMEOUT_MS + 200).contains(&worst), "worst case {worst} ms");
    assert_eq!(names(&verdict["stale"]), set(&["dead.corp.test", "hole.corp.test"]));
    let problems: BTreeSet<(String, String)> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["code"].as_str().unwrap_or("").to_string(), p["target"].as_str().unwrap_or("").to_string()))
        .collect();
    let want: BTreeSet<(String, String)> =
        [("stale-dead", "dead.corp.test"), ("stale-dead", "hole.corp.test")].map(|(c, t)| (c.into(), t.into())).into();
    assert_eq!(problems, want, "{}", show(&out));

    // The text says the same to a person.
    let out = w.check("corp.test", "text");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    for want in [
        "client-check corp.test: _vlmcs._tcp.corp.test. SRV through",
        "every one of the 6 orders is possible, each as likely",
        "first host a client finds: kms1.corp.test, the only working host of priority 0",
        "a black hole: a client loses",
        "stale: dead.corp.test, hole.corp.test",
        "CRITICAL stale-dead:",
        "exit 2",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }

    // The resolver's copy counts down: this is its cache speaking, not the zone's TTL.
    std::thread::sleep(Duration::from_millis(1500));
    let (_, v) = w.json("corp.test");
    let ttl2 = v["verdict"]["ttl_left"].as_u64().unwrap();
    assert!(ttl2 < ttl1, "the TTL left did not count down: {ttl1} then {ttl2}");
    // And the authoritative server still says 600: the resolver is what was asked.
    assert!(w.lab.dig(0, "_vlmcs._tcp.corp.test", "SRV").len() == 4);
}

#[test]
fn no_working_host_no_record_and_a_failing_resolver_each_say_what_a_client_gets() {
    let w = World::new();

    let (out, v) = w.json("clean.test");
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(names(&v["verdict"]["first"]), set(&["kms1.corp.test"]));
    assert_eq!(v["verdict"]["worst_case_ms"].as_u64().map(|n| n < 200), Some(true), "{}", show(&out));
    assert!(v["problems"].as_array().unwrap().is_empty());

    let (out, v) = w.json("down.test");
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(v["verdict"]["first"].as_array().unwrap().is_empty());
    assert!(v["verdict"]["worst_case_ms"].is_null());
    let give_up = v["verdict"]["give_up_after_ms"].as_u64().unwrap();
    assert!(give_up >= CONNECT_TIMEOUT_MS, "gave up after {give_up} ms");
    let last = v["problems"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["code"], "no-healthy-host");
    assert!(last["message"].as_str().unwrap().contains("0xC004F074"), "{last}");

    let (out, v) = w.json("empty.test");
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert_eq!(v["srv"]["outcome"], "nx-domain", "{}", show(&out));
    // The zone's SOA MINIMUM is 60: how long the resolver keeps "no such name".
    let negative = v["srv"]["negative_ttl_left"].as_u64().unwrap();
    assert!((50..=60).contains(&negative), "negative TTL left {negative}");
    assert_eq!(v["verdict"]["ttl_left"], negative);
    assert_eq!(v["problems"][0]["code"], "no-healthy-host");
    assert!(v["problems"][0]["message"].as_str().unwrap().contains("0x8007232B"), "{}", show(&out));

    let (out, v) = w.json("gone.test");
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert_eq!(v["srv"]["outcome"], "failed");
    assert_eq!(v["srv"]["error"]["kind"], "serv-fail", "{}", show(&out));
    assert!(v["problems"][0]["message"].as_str().unwrap().contains("0x8007232A"), "{}", show(&out));
}

#[test]
fn a_resolver_that_does_not_answer_is_a_failure_not_an_empty_answer() {
    // A port where nothing listens: the kernel refuses at once.
    let port = support::free_port();
    let out = kmsdns(&["client-check", "corp.test", "--resolver", &format!("127.0.0.1:{port}"), "--format", "json"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["srv"]["outcome"], "failed", "{}", show(&out));
    assert!(v["verdict"]["ttl_left"].is_null());

    let out = kmsdns(&["client-check", "not a name", "--resolver", "127.0.0.1"]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
}

#[test]
fn explain_maps_a_code_to_findings_and_the_next_command_and_never_guesses() {
    let out = kmsdns(&["explain", "0x800706BA"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "0x800706BA (RPC_S_SERVER_UNAVAILABLE): The RPC server is unavailable.",
        "stale-dead",
        "kmsdns client-check DOMAIN",
        "source: Microsoft",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }

    let out = kmsdns(&["explain", "c004f038", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outcome"], "known");
    assert!(v["entry"]["meaning"].as_str().unwrap().contains("25 for client editions"));
    assert!(v["entry"]["next"][0].as_str().unwrap().contains("slmgr /dli"));

    let out = kmsdns(&["explain", "0x80070005"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("not a DNS/KMS-host cause that kmsdns can check"));

    let out = kmsdns(&["explain", "activation failed"]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));

    let out = kmsdns(&["explain"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("0x8007232B"));
}
