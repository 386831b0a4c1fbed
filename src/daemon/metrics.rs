//! The daemon's Prometheus metrics: a snapshot kept up to date by the loop, rendered in the
//! text exposition format (0.0.4) and served on `/metrics` by hyper.
//!
//! The server is deliberately small and bounded: at most [`MAX_CONNECTIONS`] connections at
//! once (more wait in the listen backlog), each closed gracefully after [`CONNECTION_LIFETIME`]
//! so that idle keep-alive clients cannot hold every slot, and a client has
//! [`HEADER_TIMEOUT`] to send a request's headers. HTTP/1.1 keep-alive and HEAD are hyper's;
//! `/metrics` answers GET and HEAD, other methods get 405, other paths 404.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::audit::{Health, Severity, health};
use crate::daemon::health::Verdict;
use crate::inventory::{HostState, Inventory};
use crate::model::Observation;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 32;
/// How long a client may take to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection is closed (after the request in flight) once it is this old.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);

const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether a KMS host answered as one, as the last audit judged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostLiveness {
    /// It answers the KMS bind.
    Up,
    /// It does not: down, another service on the port, or no address.
    Down,
    /// Its lookup or its probes could not be made: no verdict.
    Unknown,
}

impl HostLiveness {
    const ALL: [HostLiveness; 3] = [HostLiveness::Up, HostLiveness::Down, HostLiveness::Unknown];

    fn as_str(self) -> &'static str {
        match self {
            HostLiveness::Up => "up",
            HostLiveness::Down => "down",
            HostLiveness::Unknown => "unknown",
        }
    }
}

/// What the daemon last knew.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    /// `[instance] id`: which of several instances this is.
    pub instance: String,
    /// Findings of the last cycle by (zone, code, severity).
    pub findings: BTreeMap<(String, String, Severity), u64>,
    /// Each probed endpoint's verdict.
    pub probes: BTreeMap<SocketAddr, Verdict>,
    /// Each (zone, server): whether the last cycle could read its `_vlmcs._tcp` answer.
    pub servers: BTreeMap<(String, String), bool>,
    /// Each (zone, host) of an SRV target or an active inventory host: its liveness.
    pub hosts: BTreeMap<(String, String), HostLiveness>,
    /// `[daemon] interval`, for the "not cycling" alert.
    pub audit_interval_seconds: f64,
    /// Unix time when the last complete cycle ended.
    pub last_cycle_end: f64,
    pub cycle_seconds: f64,
    pub cycles: u64,
    pub updates_applied: u64,
    pub updates_failed: u64,
}

impl Metrics {
    /// Takes the per-server and per-host gauges from a cycle's observation, judged with the
    /// audit's own [`health`] so that the metrics and the findings never disagree.
    pub fn observe(&mut self, inv: &Inventory, obs: &Observation) {
        self.servers.clear();
        self.hosts.clear();
        // Each active host's zones as a set: a scan of its list per zone is quadratic.
        let active: Vec<(&crate::inventory::KmsHost, std::collections::HashSet<&crate::name::DnsName>)> =
            inv.hosts.iter().filter(|h| h.state == HostState::Active).map(|h| (h, h.zones.iter().collect())).collect();
        for view in &obs.zones {
            let zone = view.zone.to_string();
            let mut hosts: Vec<(&crate::name::DnsName, u16)> = Vec::new();
            for s in &view.servers {
                self.servers.insert((zone.clone(), s.server.to_string()), s.srv.known_records().is_some());
                hosts.extend(s.srv.known_records().unwrap_or(&[]).iter().map(|r| (&r.target, r.port)));
            }
            hosts.extend(active.iter().filter(|(_, zones)| zones.contains(&view.zone)).map(|(h, _)| (&h.name, h.port)));
            for (name, port) in hosts {
                let now = match health(obs, name, port) {
                    Health::Up => HostLiveness::Up,
                    Health::Down(_) | Health::NotKms(_) | Health::NoAddress => HostLiveness::Down,
                    Health::Unknown(_) => HostLiveness::Unknown,
                };
                // A host published on two ports is up when it answers on either.
                let entry = self.hosts.entry((zone.clone(), name.to_string())).or_insert(now);
                if now == HostLiveness::Up || *entry == HostLiveness::Down && now == HostLiveness::Unknown {
                    *entry = now;
                }
            }
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let section = |out: &mut String, name: &str, kind: &str, help: &str, lines: String| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            out.push_str(&lines);
        };
        section(
            &mut out,
            "kmsdns_build_info",
            "gauge",
            "The running kmsdns: its version as a label, value 1.",
            format!("kmsdns_build_info{{version=\"{}\"}} 1\n", escape(env!("CARGO_PKG_VERSION"))),
        );
        section(
            &mut out,
            "kmsdns_instance_info",
            "gauge",
            "Which instance this is ([instance] id, the id of its entry in each zone's shared view), value 1.",
            format!("kmsdns_instance_info{{instance=\"{}\"}} 1\n", escape(&self.instance)),
        );
        let mut findings = String::new();
        for ((zone, code, severity), n) in &self.findings {
            let severity = match severity {
                Severity::Critical => "critical",
                Severity::Warning => "warning",
                Severity::Info => "info",
            };
            let _ = writeln!(
                findings,
                "kmsdns_findings{{zone=\"{}\",code=\"{}\",severity=\"{severity}\"}} {n}",
                escape(zone),
                escape(code)
            );
        }
        section(
            &mut out,
            "kmsdns_findings",
            "gauge",
            "Findings of the last audit, by zone, code and severity.",
            findings,
        );
        let mut servers = String::new();
        for ((zone, server), readable) in &self.servers {
            let _ = writeln!(
                servers,
                "kmsdns_server_readable{{zone=\"{}\",server=\"{}\"}} {}",
                escape(zone),
                escape(server),
                u8::from(*readable)
            );
        }
        section(
            &mut out,
            "kmsdns_server_readable",
            "gauge",
            "1 when the last audit could read the server's _vlmcs._tcp answer, 0 when it could not.",
            servers,
        );
        let mut hosts = String::new();
        for ((zone, host), now) in &self.hosts {
            for state in HostLiveness::ALL {
                let _ = writeln!(
                    hosts,
                    "kmsdns_host_state{{zone=\"{}\",host=\"{}\",state=\"{}\"}} {}",
                    escape(zone),
                    escape(host),
                    state.as_str(),
                    u8::from(*now == state)
                );
            }
        }
        section(
            &mut out,
            "kmsdns_host_state",
            "gauge",
            "Each SRV target and active host of a zone: up (answers as KMS), down, or unknown (1 for the current one).",
            hosts,
        );
        let mut probes = String::new();
        for (ep, v) in &self.probes {
            for state in [Verdict::Alive, Verdict::Dead, Verdict::Unknown] {
                let on = u8::from(*v == state);
                let _ = writeln!(probes, "kmsdns_probe_state{{endpoint=\"{ep}\",state=\"{}\"}} {on}", state.as_str());
            }
        }
        section(
            &mut out,
            "kmsdns_probe_state",
            "gauge",
            "Each KMS endpoint's verdict (1 for the current one).",
            probes,
        );
        section(
            &mut out,
            "kmsdns_audit_interval_seconds",
            "gauge",
            "The configured time between audit cycles ([daemon] interval).",
            format!("kmsdns_audit_interval_seconds {}\n", self.audit_interval_seconds),
        );
        section(
            &mut out,
            "kmsdns_last_cycle_timestamp_seconds",
            "gauge",
            "When the last complete audit cycle ended (Unix time).",
            format!("kmsdns_last_cycle_timestamp_seconds {}\n", self.last_cycle_end),
        );
        section(
            &mut out,
            "kmsdns_cycle_duration_seconds",
            "gauge",
            "How long the last audit cycle took.",
            format!("kmsdns_cycle_duration_seconds {}\n", self.cycle_seconds),
        );
        section(
            &mut out,
            "kmsdns_cycles_total",
            "counter",
            "Audit cycles completed.",
            format!("kmsdns_cycles_total {}\n", self.cycles),
        );
        section(
            &mut out,
            "kmsdns_updates_total",
            "counter",
            "RFC 2136 updates sent, by result.",
            format!(
                "kmsdns_updates_total{{result=\"applied\"}} {}\nkmsdns_updates_total{{result=\"failed\"}} {}\n",
                self.updates_applied, self.updates_failed
            ),
        );
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The answer to one request.
fn answer(req: &Request<Incoming>, metrics: &Mutex<Metrics>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_TEXT));
        r
    };
    if req.uri().path() != "/metrics" {
        return reply(StatusCode::NOT_FOUND, "not found: kmsdns serves its metrics at /metrics\n".into());
    }
    match *req.method() {
        // hyper leaves out the body of a HEAD answer and keeps its Content-Length.
        Method::GET | Method::HEAD => reply(StatusCode::OK, metrics.lock().map(|m| m.render()).unwrap_or_default()),
        _ => {
            let mut r = reply(StatusCode::METHOD_NOT_ALLOWED, "/metrics answers GET and HEAD\n".into());
            r.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            r
        }
    }
}

/// Serves `/metrics` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Mutex<Metrics>>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        // Take a slot before accepting: beyond the bound, connections wait in the backlog.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, say: wait instead of spinning on the error.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let response = answer(&req, &metrics);
                async move { Ok::<_, Infallible>(response) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = tokio::time::sleep(CONNECTION_LIFETIME) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(HEADER_TIMEOUT, conn).await;
                }
            }
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_family() {
        let mut m = Metrics::default();
        m.findings.insert(("corp.test".into(), "stale-dead".into(), Severity::Critical), 2);
        m.probes.insert("127.0.0.1:1688".parse().unwrap(), Verdict::Dead);
        m.servers.insert(("corp.test".into(), "192.0.2.1:53".into()), false);
        m.hosts.insert(("corp.test".into(), "kms1.corp.test".into()), HostLiveness::Up);
        m.updates_applied = 3;
        let text = m.render();
        assert!(text.contains("kmsdns_findings{zone=\"corp.test\",code=\"stale-dead\",severity=\"critical\"} 2"));
        assert!(text.contains("kmsdns_probe_state{endpoint=\"127.0.0.1:1688\",state=\"dead\"} 1"));
        assert!(text.contains("kmsdns_probe_state{endpoint=\"127.0.0.1:1688\",state=\"alive\"} 0"));
        assert!(text.contains("kmsdns_server_readable{zone=\"corp.test\",server=\"192.0.2.1:53\"} 0"));
        assert!(text.contains("kmsdns_host_state{zone=\"corp.test\",host=\"kms1.corp.test\",state=\"up\"} 1"));
        assert!(text.contains("kmsdns_host_state{zone=\"corp.test\",host=\"kms1.corp.test\",state=\"unknown\"} 0"));
        assert!(text.contains(&format!("kmsdns_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"))));
        assert!(text.contains("kmsdns_updates_total{result=\"applied\"} 3"));
        for family in ["kmsdns_last_cycle_timestamp_seconds", "kmsdns_cycle_duration_seconds", "kmsdns_cycles_total"] {
            assert!(text.contains(&format!("# TYPE {family} ")), "{family}");
        }
    }

    #[test]
    fn servers_and_hosts_are_judged_as_the_audit_judges_them() {
        use crate::model::{ProbeState, ReadError};
        use crate::testkit::{World, failed};
        // Server 1 unreadable; kms2 (active, published) is down; spare is not probed; rogue
        // is published but unknown to the inventory, and up.
        let w = World::new(&["kms1.corp.test", "kms2.corp.test", "spare.corp.test", "rogue.corp.test"])
            .server(1, failed(ReadError::Timeout))
            .host("kms2.corp.test", 2, Some(ProbeState::Down("refused".into())))
            .host("spare.corp.test", 3, None)
            .host("rogue.corp.test", 9, Some(ProbeState::KmsUp));
        let mut m = Metrics::default();
        m.observe(&w.inv, &w.obs);
        let servers: Vec<(&str, bool)> = m.servers.iter().map(|((_, s), r)| (s.as_str(), *r)).collect();
        assert_eq!(servers, [("127.0.0.1:5300", true), ("127.0.0.1:5301", false)]);
        let hosts: Vec<(&str, HostLiveness)> = m.hosts.iter().map(|((_, h), l)| (h.as_str(), *l)).collect();
        assert_eq!(
            hosts,
            [
                ("kms1.corp.test", HostLiveness::Up),
                ("kms2.corp.test", HostLiveness::Down),
                ("rogue.corp.test", HostLiveness::Up),
                ("spare.corp.test", HostLiveness::Unknown),
            ]
        );
    }
}
