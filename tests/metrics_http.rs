//! `/metrics` as Prometheus and an admin with curl meet it: HTTP/1.1 keep-alive, HEAD, 404
//! and 405, a bound on connections, and an exposition that Prometheus's own `promtool`
//! accepts.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kmsdns::audit::Severity;
use kmsdns::daemon::health::Verdict;
use kmsdns::daemon::metrics::{HostLiveness, MAX_CONNECTIONS, Metrics};

/// A metrics server on a free loopback port, on its own runtime, stopped when dropped.
struct Server {
    addr: SocketAddr,
    _rt: tokio::runtime::Runtime,
}

impl Server {
    fn start(metrics: Metrics) -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        rt.spawn(kmsdns::daemon::metrics::serve(listener, Arc::new(Mutex::new(metrics))));
        Server { addr, _rt: rt }
    }

    fn connect(&self) -> BufReader<TcpStream> {
        let c = TcpStream::connect(self.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        BufReader::new(c)
    }
}

/// A full picture: every family has samples.
fn busy() -> Metrics {
    let mut m = Metrics { cycles: 7, updates_applied: 2, updates_failed: 1, ..Default::default() };
    m.findings.insert(("corp.test".into(), "stale-dead".into(), Severity::Critical), 2);
    m.findings.insert(("branch \"x\"\\.test".into(), "no-healthy-host".into(), Severity::Critical), 1);
    m.probes.insert("127.0.0.1:1688".parse().unwrap(), Verdict::Alive);
    m.probes.insert("[::1]:1688".parse().unwrap(), Verdict::Unknown);
    m.servers.insert(("corp.test".into(), "192.0.2.1:53".into()), true);
    m.servers.insert(("corp.test".into(), "[2001:db8::1]:53".into()), false);
    m.hosts.insert(("corp.test".into(), "kms1.corp.test".into()), HostLiveness::Up);
    m.hosts.insert(("corp.test".into(), "kms2.corp.test".into()), HostLiveness::Down);
    m.audit_interval_seconds = 60.0;
    m.last_cycle_end = 1_700_000_000.5;
    m.cycle_seconds = 0.25;
    m
}

/// One response on `conn`: status line, headers (lower-cased names), body.
fn read_response(conn: &mut BufReader<TcpStream>, head: bool) -> (String, Vec<(String, String)>, String) {
    let mut status = String::new();
    conn.read_line(&mut status).unwrap();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        conn.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':').unwrap_or_else(|| panic!("bad header {line:?}"));
        headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers.iter().find(|(k, _)| k == "content-length").map(|(_, v)| v.parse().unwrap()).unwrap_or(0);
    let mut body = vec![0; if head { 0 } else { len }];
    conn.read_exact(&mut body).unwrap();
    (status.trim_end().to_string(), headers, String::from_utf8(body).unwrap())
}

fn request(conn: &mut BufReader<TcpStream>, method: &str, path: &str) -> (String, Vec<(String, String)>, String) {
    write!(conn.get_mut(), "{method} {path} HTTP/1.1\r\nHost: kmsdns\r\n\r\n").unwrap();
    read_response(conn, method == "HEAD")
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[test]
fn one_connection_serves_several_scrapes() {
    let server = Server::start(busy());
    let mut conn = server.connect();
    for _ in 0..3 {
        let (status, headers, body) = request(&mut conn, "GET", "/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(header(&headers, "content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
        assert!(body.contains("kmsdns_cycles_total 7"), "{body}");
    }
}

#[test]
fn head_gives_the_headers_without_the_body() {
    let server = Server::start(busy());
    let mut conn = server.connect();
    let (_, _, body) = request(&mut conn, "GET", "/metrics");
    let (status, headers, _) = request(&mut conn, "HEAD", "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(header(&headers, "content-length"), Some(body.len().to_string().as_str()));
    // The connection is still in step: no body was sent after the HEAD answer.
    let (status, _, again) = request(&mut conn, "GET", "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(again, body);
}

#[test]
fn other_paths_are_404_and_other_methods_405() {
    let server = Server::start(busy());
    let mut conn = server.connect();
    let (status, _, body) = request(&mut conn, "GET", "/");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    assert!(body.contains("/metrics"), "{body}");
    let (status, _, _) = request(&mut conn, "GET", "/metricsx");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, headers, _) = request(&mut conn, "POST", "/metrics");
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    assert_eq!(header(&headers, "allow"), Some("GET, HEAD"));
    let (status, _, body) = request(&mut conn, "GET", "/metrics?name[]=kmsdns_cycles_total");
    assert_eq!(status, "HTTP/1.1 200 OK", "a query string is ignored");
    assert!(body.contains("kmsdns_cycles_total 7"));
}

#[test]
fn connections_beyond_the_bound_wait_for_a_free_slot() {
    let server = Server::start(busy());
    let mut held: Vec<BufReader<TcpStream>> = (0..MAX_CONNECTIONS).map(|_| server.connect()).collect();
    // Each held connection has been accepted once it has been answered.
    for c in &mut held {
        assert_eq!(request(c, "GET", "/metrics").0, "HTTP/1.1 200 OK");
    }
    let mut extra = server.connect();
    write!(extra.get_mut(), "GET /metrics HTTP/1.1\r\nHost: kmsdns\r\n\r\n").unwrap();
    extra.get_ref().set_read_timeout(Some(Duration::from_millis(700))).unwrap();
    let mut byte = [0u8; 1];
    let waited = extra.get_mut().read(&mut byte);
    assert!(waited.is_err(), "a connection beyond {MAX_CONNECTIONS} was served at once: {waited:?}");
    drop(held.pop());
    extra.get_ref().set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (status, _, _) = read_response(&mut extra, false);
    assert_eq!(status, "HTTP/1.1 200 OK", "served once a slot was free");
}

fn promtool() -> PathBuf {
    let path = PathBuf::from("/usr/bin/promtool");
    assert!(path.exists(), "promtool is not installed (Debian package prometheus); run scripts/install-test-deps");
    path
}

#[test]
fn promtool_accepts_the_exposition_as_served() {
    let server = Server::start(busy());
    let mut conn = server.connect();
    let (_, _, body) = request(&mut conn, "GET", "/metrics");
    let mut check = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = check.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics:\n{said}\n---\n{body}");
    for family in [
        "kmsdns_build_info",
        "kmsdns_findings",
        "kmsdns_server_readable",
        "kmsdns_host_state",
        "kmsdns_probe_state",
        "kmsdns_audit_interval_seconds",
        "kmsdns_last_cycle_timestamp_seconds",
        "kmsdns_cycle_duration_seconds",
        "kmsdns_cycles_total",
        "kmsdns_updates_total",
    ] {
        assert!(body.contains(&format!("# TYPE {family} ")), "{family} missing:\n{body}");
    }
}

#[test]
fn promtool_rejects_a_broken_exposition() {
    // The check above means something only if promtool says no to a bad text.
    let mut check = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check.stdin.take().unwrap().write_all(b"# TYPE x counter\nx{a=\"unterminated} 1\n").unwrap();
    assert!(!check.wait_with_output().unwrap().status.success());
}
