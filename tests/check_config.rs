//! `kmsdns check-config` as an admin meets it: a typo in a server address or an absurd file is
//! refused with a message that says where and what, in a line or two.

mod support;

use std::path::PathBuf;

use support::run::{kmsdns, show};

/// An inventory with one zone whose servers are `servers`, and anything after it.
fn inventory(dir: &tempfile::TempDir, servers: &str, rest: &str) -> PathBuf {
    let path = dir.path().join("kmsdns.toml");
    std::fs::write(&path, format!("[[zone]]\nname = \"corp.test\"\nservers = [{servers}]\n{rest}")).unwrap();
    path
}

fn check(path: &std::path::Path) -> (Option<i32>, String) {
    let out = kmsdns(&["check-config", "--config", path.to_str().unwrap()]);
    (out.status.code(), show(&out))
}

#[test]
fn a_server_on_port_0_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = check(&inventory(&dir, "\"1.2.3.4:0\"", ""));
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("kmsdns.toml:3:12: zone[0].servers[0]: '0' is not a port (1-65535)"), "{out}");
}

#[test]
fn the_metrics_address_on_port_0_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = check(&inventory(&dir, "\"192.0.2.1\"", "[daemon]\nmetrics = \"127.0.0.1:0\"\n"));
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("daemon.metrics: '127.0.0.1:0'"), "{out}");
    assert!(out.contains("port 0"), "{out}");
}

#[test]
fn a_dotted_quad_out_of_range_is_not_taken_for_a_host_name() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = check(&inventory(&dir, "\"192.0.2.1\", \"256.1.1.1\", \"10.0.0.300:53\"", ""));
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains("zone[0].servers[1]: '256.1.1.1' is not an IPv4 address (each of its four numbers is 0-255)"),
        "{out}"
    );
    assert!(out.contains("zone[0].servers[2]: '10.0.0.300' is not an IPv4 address"), "{out}");
}

#[test]
fn names_and_addresses_that_are_fine_stay_fine() {
    let dir = tempfile::tempdir().unwrap();
    let servers = "\"192.0.2.1\", \"192.0.2.2:5300\", \"[2001:db8::1]:53\", \"2001:db8::2\", \"dc2.corp.test:53\", \"ns1.1and1.test\", \"[2001:db8::10]\"";
    let (code, out) = check(&inventory(&dir, servers, ""));
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn a_key_nested_too_deeply_is_reported_where_it_is_and_not_echoed_whole() {
    let dir = tempfile::tempdir().unwrap();
    let deep = format!("a{}", ".a".repeat(100_000));
    let path = inventory(&dir, "\"192.0.2.1\"", &format!("\n{deep} = 1\n"));
    let (code, out) = check(&path);
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("kmsdns.toml:5:1: "), "the key is on line 5:\n{}", &out[..out.len().min(400)]);
    assert!(out.contains("nested too deeply"), "{}", &out[..out.len().min(400)]);
    assert!(out.len() < 1000, "{} bytes of output:\n{}", out.len(), &out[..out.len().min(400)]);
}

#[test]
fn a_table_header_nested_too_deeply_is_reported_where_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let deep = format!("[zone.{}]", vec!["x"; 200].join("."));
    let path = inventory(&dir, "\"192.0.2.1\"", &format!("\n\n{deep}\n"));
    let (code, out) = check(&path);
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("kmsdns.toml:6:1: "), "{out}");
    assert!(out.contains("nested too deeply"), "{out}");
    assert!(out.len() < 1000, "{} bytes:\n{out}", out.len());
}
