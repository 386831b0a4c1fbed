//! The observation layer against real BIND 9: what each server answers, and how failures are
//! recorded (unknown, never empty).

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use kmsdns::audit::{Code, audit};
use kmsdns::demo::responder::{Behaviour, KmsResponder};
use kmsdns::inventory::Inventory;
use kmsdns::model::{ReadError, SrvAnswer};
use kmsdns::name::DnsName;
use kmsdns::observe::{DnsReader, observe};
use support::{BindLab, ZoneSpec, loopback_ip};

fn name(s: &str) -> DnsName {
    DnsName::parse(s).unwrap()
}

fn reader() -> DnsReader {
    DnsReader::new(Duration::from_millis(500), 1)
}

fn inventory(zones: &[(&str, Vec<SocketAddr>)], hosts: &str) -> Inventory {
    let mut t = String::from("[defaults]\ntimeout = \"500ms\"\nretries = 1\n");
    for (z, servers) in zones {
        let s: Vec<String> = servers.iter().map(|a| format!("\"{a}\"")).collect();
        t.push_str(&format!("\n[[zone]]\nname = \"{z}\"\nservers = [{}]\n", s.join(", ")));
    }
    t.push_str(hosts);
    Inventory::from_toml(&t).unwrap_or_else(|p| panic!("{p:?}\n{t}"))
}

#[tokio::test]
async fn nxdomain_no_data_and_records_are_told_apart() {
    let lab = BindLab::primary_secondary(&[
        ZoneSpec::new("empty.test"),
        ZoneSpec::new("txt.test").record("_vlmcs._tcp 3600 IN TXT \"not an SRV\""),
        ZoneSpec::new("one.test").record("_vlmcs._tcp 600 IN SRV 10 20 1688 KMS1.One.Test."),
    ]);
    let server = lab.servers[1].addr;
    let (srv, serial, _) = reader().zone_view(server, &name("empty.test")).await;
    assert_eq!((srv, serial), (SrvAnswer::NxDomain, Ok(1)));
    assert_eq!(reader().zone_view(server, &name("txt.test")).await.0, SrvAnswer::NoData);
    let SrvAnswer::Records { records } = reader().zone_view(server, &name("one.test")).await.0 else {
        panic!("expected records");
    };
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].to_string(), "SRV 10 20 1688 kms1.one.test.");
    assert_eq!(records[0].ttl, 600);
}

#[tokio::test]
async fn a_truncated_answer_is_asked_again_over_tcp() {
    // 60 SRV records with long targets are far more than a UDP answer holds.
    let mut zone = ZoneSpec::new("big.test");
    for i in 0..60 {
        zone = zone.record(&format!("_vlmcs._tcp 3600 IN SRV 0 0 1688 kms-host-with-a-long-name-{i:02}.big.test."));
    }
    let lab = BindLab::primary_secondary(&[zone]);
    let (srv, _, _) = reader().zone_view(lab.servers[0].addr, &name("big.test")).await;
    let SrvAnswer::Records { records } = srv else { panic!("expected records, got {srv:?}") };
    assert_eq!(records.len(), 60);
}

#[tokio::test]
async fn refusals_silence_and_closed_ports_are_errors_not_empty_answers() {
    let lab = BindLab::primary_secondary(&[ZoneSpec::new("served.test")]);
    // BIND serves no such zone and does not recurse: REFUSED.
    let (srv, serial, _) = reader().zone_view(lab.servers[0].addr, &name("elsewhere.test")).await;
    assert_eq!(srv, SrvAnswer::Failed { error: ReadError::Refused });
    assert_eq!(serial, Err(ReadError::Refused));

    // A socket that reads nothing and answers nothing: a timeout, after the retries.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (srv, _, _) = reader().zone_view(silent.local_addr().unwrap(), &name("served.test")).await;
    assert_eq!(srv, SrvAnswer::Failed { error: ReadError::Timeout });

    // A port where nothing listens: the kernel refuses at once.
    let closed = {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    let (srv, _, _) = reader().zone_view(closed, &name("served.test")).await;
    assert!(matches!(srv, SrvAnswer::Failed { error: ReadError::Network(_) | ReadError::Timeout }), "{srv:?}");
}

#[tokio::test]
async fn a_stopped_secondary_is_unreachable_and_its_records_unknown() {
    let (kms1, kms1_port) = loopback_ip();
    let _up = KmsResponder::from_listener(kms1_port, Behaviour::Kms).unwrap();
    let (dead, _) = loopback_ip();
    let zone = ZoneSpec::new("corp.test")
        .record(&format!("kms1 IN A {kms1}"))
        .record(&format!("kms2 IN A {dead}"))
        .record("_vlmcs._tcp IN SRV 0 0 1688 kms1.corp.test.");
    let mut lab = BindLab::primary_secondary(&[zone]);
    let servers: Vec<SocketAddr> = lab.servers.iter().map(|s| s.addr).collect();
    let inv = inventory(
        &[("corp.test", servers.clone())],
        "[[host]]\nname = \"kms1.corp.test\"\nzones = [\"corp.test\"]\nstate = \"active\"\n",
    );
    assert!(audit(&inv, &observe(&inv).await).is_empty());

    // The primary loses the record; the secondary is stopped before it can follow.
    lab.servers[1].stop();
    lab.update(0, "corp.test", &["update delete _vlmcs._tcp.corp.test. SRV"]);
    let obs = observe(&inv).await;
    assert!(matches!(obs.zones[0].servers[1].srv, SrvAnswer::Failed { .. }));
    let found: Vec<(Code, Option<String>)> = audit(&inv, &obs).into_iter().map(|f| (f.code, f.server)).collect();
    // The primary's missing record is reported for the primary alone; nothing about the secondary
    // but that it could not be read.
    assert_eq!(
        found,
        vec![
            (Code::ServerUnreachable, Some(servers[1].to_string())),
            (Code::NoHealthyHost, None),
            (Code::MissingRecord, None),
        ]
    );
}

#[tokio::test]
async fn targets_resolve_through_the_zones_servers_and_each_endpoint_is_probed_once() {
    let (kms1, kms1_port) = loopback_ip();
    let _up = KmsResponder::from_listener(kms1_port, Behaviour::Kms).unwrap();
    let hosts = ZoneSpec::new("hosts.test").record(&format!("kms1 IN A {kms1}"));
    let zones: Vec<ZoneSpec> = (1..=3)
        .map(|i| ZoneSpec::new(&format!("site{i}.test")).record("_vlmcs._tcp IN SRV 0 0 1688 kms1.hosts.test."))
        .collect();
    let mut all = vec![hosts];
    all.extend(zones);
    let lab = BindLab::independent_primaries(&all, 2);
    let servers: Vec<SocketAddr> = lab.servers.iter().map(|s| s.addr).collect();
    let zone_list: Vec<(&str, Vec<SocketAddr>)> =
        ["hosts.test", "site1.test", "site2.test", "site3.test"].iter().map(|z| (*z, servers.clone())).collect();
    let inv = inventory(
        &zone_list,
        "[[host]]\nname = \"kms1.hosts.test\"\nzones = [\"site1.test\", \"site2.test\", \"site3.test\"]\nstate = \"active\"\n",
    );
    let obs = observe(&inv).await;
    assert_eq!(obs.names.len(), 1, "{:?}", obs.names);
    assert_eq!(obs.probes.len(), 1, "{:?}", obs.probes);
    assert_eq!(obs.probes.values().next().unwrap().code(), "kms-up");
    assert!(audit(&inv, &obs).is_empty());
}

#[tokio::test]
async fn an_alias_target_is_followed_and_an_unreadable_record_makes_the_answer_unknown() {
    let (kms1, kms1_port) = loopback_ip();
    let _up = KmsResponder::from_listener(kms1_port, Behaviour::Kms).unwrap();
    let lab = BindLab::primary_secondary(&[
        ZoneSpec::new("alias.test")
            .record(&format!("kms1 IN A {kms1}"))
            .record("kms IN CNAME kms1")
            .record("_vlmcs._tcp IN SRV 0 0 1688 kms.alias.test."),
        ZoneSpec::new("dot.test").record("_vlmcs._tcp IN SRV 0 0 0 ."),
    ]);
    let servers: Vec<SocketAddr> = lab.servers.iter().map(|s| s.addr).collect();
    let inv = inventory(&[("alias.test", servers.clone()), ("dot.test", servers)], "");
    let obs = observe(&inv).await;
    // Clients follow the alias to a KMS host: the record is not stale, only unknown to the inventory.
    let found: Vec<(Code, String)> =
        audit(&inv, &obs).into_iter().map(|f| (f.code, f.target.map(|t| t.to_string()).unwrap_or_default())).collect();
    assert!(found.contains(&(Code::StaleUnknownHost, "kms.alias.test".into())), "{found:?}");
    assert!(!found.iter().any(|(c, _)| *c == Code::StaleUnresolvable), "{found:?}");
    // "Service not available" (target ".") cannot be judged: that server's answer is unknown.
    assert!(
        matches!(&obs.zones[1].servers[0].srv, SrvAnswer::Failed { error: ReadError::Malformed(m) } if m.contains("target"))
    );
}
