//! The daemon's Prometheus metrics: a snapshot kept up to date by the loop, served as text
//! (exposition format 0.0.4) on `GET /metrics`. The format is a few lines of text, so it is
//! written here rather than pulled in with an HTTP stack.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::health::Verdict;

/// What the daemon last knew.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    /// Findings of the last cycle by (zone, code).
    pub findings: BTreeMap<(String, String), u64>,
    /// Each probed endpoint's verdict.
    pub probes: BTreeMap<SocketAddr, Verdict>,
    /// Unix time when the last complete cycle ended.
    pub last_cycle_end: f64,
    pub cycle_seconds: f64,
    pub cycles: u64,
    pub updates_applied: u64,
    pub updates_failed: u64,
}

impl Metrics {
    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let section = |out: &mut String, name: &str, kind: &str, help: &str, lines: String| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            out.push_str(&lines);
        };
        let mut findings = String::new();
        for ((zone, code), n) in &self.findings {
            let _ = writeln!(findings, "kmsdns_findings{{zone=\"{}\",code=\"{}\"}} {n}", escape(zone), escape(code));
        }
        section(&mut out, "kmsdns_findings", "gauge", "Findings of the last audit, by zone and code.", findings);
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

/// Serves `GET /metrics` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Mutex<Metrics>>) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            // Out of file descriptors, say: wait instead of spinning on the error.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            // One short request per connection; a client that dawdles is dropped.
            let mut buf = vec![0u8; 2048];
            let mut len = 0;
            let read = async {
                while len < buf.len() {
                    let n = conn.read(&mut buf[len..]).await?;
                    if n == 0 {
                        break;
                    }
                    len += n;
                    if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                Ok::<_, std::io::Error>(())
            };
            if tokio::time::timeout(Duration::from_secs(2), read).await.is_err() {
                return;
            }
            let request = String::from_utf8_lossy(&buf[..len]);
            let response = if request.starts_with("GET /metrics ") || request.starts_with("GET /metrics?") {
                let body = metrics.lock().map(|m| m.render()).unwrap_or_default();
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
            };
            let _ = conn.write_all(response.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_family() {
        let mut m = Metrics::default();
        m.findings.insert(("corp.test".into(), "stale-dead".into()), 2);
        m.probes.insert("127.0.0.1:1688".parse().unwrap(), Verdict::Dead);
        m.updates_applied = 3;
        let text = m.render();
        assert!(text.contains("kmsdns_findings{zone=\"corp.test\",code=\"stale-dead\"} 2"));
        assert!(text.contains("kmsdns_probe_state{endpoint=\"127.0.0.1:1688\",state=\"dead\"} 1"));
        assert!(text.contains("kmsdns_probe_state{endpoint=\"127.0.0.1:1688\",state=\"alive\"} 0"));
        assert!(text.contains("kmsdns_updates_total{result=\"applied\"} 3"));
        for family in ["kmsdns_last_cycle_timestamp_seconds", "kmsdns_cycle_duration_seconds", "kmsdns_cycles_total"] {
            assert!(text.contains(&format!("# TYPE {family} ")), "{family}");
        }
    }

    #[tokio::test]
    async fn metrics_are_served_over_http() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let m = Arc::new(Mutex::new(Metrics { cycles: 7, ..Default::default() }));
        let server = tokio::spawn(serve(listener, m));
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut body = String::new();
        c.read_to_string(&mut body).await.unwrap();
        assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
        assert!(body.contains("kmsdns_cycles_total 7"), "{body}");
        server.abort();
    }
}
