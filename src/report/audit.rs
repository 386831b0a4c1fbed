//! The audit report: `kmsdns audit` and `kmsdns --audit`, text and JSON (schema 1).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;

use serde::Serialize;

use crate::audit::{Finding, Severity};
use crate::inventory::{Inventory, ServerAddr};
use crate::model::{Observation, ProbeState, ReadError, Resolution, SrvAnswer, SrvRecord};
use crate::name::DnsName;

use super::{SCHEMA, exit_code, push_wrapped, push_wrapped_visible};

/// Schema 1 of `kmsdns audit --format json`. Each zone's part borrows what the observation
/// read, instead of a copy of every record (60,000 at 10,000 zones) made only to be written.
#[derive(Debug, Serialize)]
pub struct AuditReport<'a> {
    pub schema: u32,
    /// RFC 3339, UTC, when the observation ended.
    pub generated: String,
    pub zones: Vec<ZoneReport<'a>>,
    pub targets: Vec<TargetReport>,
    pub findings: Vec<Finding>,
    pub summary: Summary,
}

#[derive(Debug, Serialize)]
pub struct ZoneReport<'a> {
    pub zone: &'a DnsName,
    pub servers: Vec<ServerReport<'a>>,
}

#[derive(Debug, Serialize)]
pub struct ServerReport<'a> {
    pub server: &'a ServerAddr,
    /// `records`, `no-data`, `nxdomain` or `failed`.
    pub outcome: &'static str,
    pub records: &'a [SrvRecord],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a ReadError>,
    pub serial: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial_error: Option<&'a ReadError>,
}

#[derive(Debug, Serialize)]
pub struct TargetReport {
    pub name: DnsName,
    /// `addresses`, `no-address` or `failed`.
    pub resolution: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ReadError>,
    pub probes: Vec<ProbeReport>,
}

#[derive(Debug, Serialize)]
pub struct ProbeReport {
    pub endpoint: SocketAddr,
    /// `kms-up`, `not-kms` or `down`; `unprobed` when no probe was made for this port.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub critical: usize,
    pub warning: usize,
    pub info: usize,
    pub zones: usize,
    pub servers: usize,
    pub servers_unreadable: usize,
    pub targets: usize,
    pub exit_code: i32,
}

impl<'a> AuditReport<'a> {
    pub fn new(inv: &Inventory, obs: &'a Observation, findings: Vec<Finding>, generated: String) -> AuditReport<'a> {
        let zones = obs
            .zones
            .iter()
            .map(|z| ZoneReport {
                zone: &z.zone,
                servers: z
                    .servers
                    .iter()
                    .map(|s| {
                        let (outcome, records, error): (_, &[SrvRecord], _) = match &s.srv {
                            SrvAnswer::Records { records } => ("records", records, None),
                            SrvAnswer::NoData => ("no-data", &[], None),
                            SrvAnswer::NxDomain => ("nxdomain", &[], None),
                            SrvAnswer::Failed { error } => ("failed", &[], Some(error)),
                        };
                        ServerReport {
                            server: &s.server,
                            outcome,
                            records,
                            error,
                            serial: s.serial.as_ref().ok().copied(),
                            serial_error: s.serial.as_ref().err(),
                        }
                    })
                    .collect(),
            })
            .collect();
        let targets = target_reports(inv, obs);
        let count = |sev| findings.iter().filter(|f| f.severity == sev).count();
        let servers: Vec<_> = obs.zones.iter().flat_map(|z| &z.servers).collect();
        let summary = Summary {
            critical: count(Severity::Critical),
            warning: count(Severity::Warning),
            info: count(Severity::Info),
            zones: obs.zones.len(),
            servers: servers.len(),
            servers_unreadable: servers.iter().filter(|s| s.srv.known_records().is_none()).count(),
            targets: targets.len(),
            exit_code: exit_code(&findings),
        };
        AuditReport { schema: SCHEMA, generated, zones, targets, findings, summary }
    }

    pub fn to_json(&self) -> String {
        // Serialising these plain structs cannot fail; an empty object would still be valid JSON.
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".into())
    }

    /// The same JSON as [`AuditReport::to_json`], written as it is made: at 10,000 zones the
    /// text is 15 MB, which need not be held in memory beside the report.
    pub fn write_json(&self, out: impl std::io::Write) -> std::io::Result<()> {
        use std::io::Write as _;
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
        write_pretty(&mut out, self)?;
        out.write_all(b"\n")?;
        out.flush()
    }

    /// The report for a person, at most `width` columns, ANSI colour when `colour`.
    pub fn to_text(&self, width: usize, colour: bool) -> String {
        let paint = |s: &str, code: &str| {
            if colour { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_string() }
        };
        let mut out = String::new();
        for z in &self.zones {
            let _ = writeln!(out, "{}", paint(&format!("zone {}", z.zone), "1"));
            for s in &z.servers {
                let serial = s.serial.map(|n| format!("serial {n}")).unwrap_or_else(|| "serial ?".into());
                let head = format!("  server {}  {serial}  ", s.server);
                match (s.outcome, &s.error) {
                    ("failed", Some(e)) => {
                        push_wrapped(&mut out, &head, &paint(&format!("unreadable: {e}"), "31"), width)
                    }
                    ("records", _) => {
                        let _ = writeln!(out, "{}", head.trim_end());
                        for r in s.records {
                            let _ = writeln!(out, "    {r}");
                        }
                    }
                    ("nxdomain", _) => push_wrapped(&mut out, &head, "NXDOMAIN (no _vlmcs._tcp)", width),
                    _ => push_wrapped(&mut out, &head, "no SRV records", width),
                }
            }
            let zone_targets: Vec<&TargetReport> = self
                .targets
                .iter()
                .filter(|t| z.servers.iter().flat_map(|s| s.records).any(|r| r.target == t.name))
                .collect();
            for t in zone_targets {
                let states = if t.probes.is_empty() {
                    t.error.as_ref().map(|e| format!("lookup failed: {e}")).unwrap_or_else(|| "no A/AAAA".into())
                } else {
                    t.probes.iter().map(|p| format!("{} {}", p.endpoint, p.state)).collect::<Vec<_>>().join(", ")
                };
                push_wrapped(&mut out, &format!("  target {}  ", t.name), &states, width);
            }
            let mut any = false;
            for f in self.findings.iter().filter(|f| &f.zone == z.zone) {
                any = true;
                let (label, code) = match f.severity {
                    Severity::Critical => ("CRITICAL", "1;31"),
                    Severity::Warning => ("WARNING ", "33"),
                    Severity::Info => ("INFO    ", "36"),
                };
                let server = f.server.as_ref().map(|s| format!(" [{s}]")).unwrap_or_default();
                let head = format!("  {} {}{server}: ", paint(label, code), f.code.as_str());
                let visible = 2 + label.len() + 1 + f.code.as_str().len() + server.len() + 2;
                push_wrapped_visible(&mut out, &head, visible, &f.message, width);
                push_wrapped(&mut out, "      fix: ", &f.fix, width);
            }
            if !any {
                let _ = writeln!(out, "  {}", paint("ok: no findings", "32"));
            }
            out.push('\n');
        }
        let s = &self.summary;
        let _ = writeln!(
            out,
            "{} critical, {} warning, {} info in {} zone(s), {} server(s) ({} unreadable), {} target(s); exit {}",
            s.critical, s.warning, s.info, s.zones, s.servers, s.servers_unreadable, s.targets, s.exit_code
        );
        out
    }
}

/// `value` as `serde_json::to_writer_pretty` writes it, byte for byte, but each line's break
/// and indentation written at once: serde_json writes the two spaces of each level one call
/// at a time, 2.5 million calls and about 5 % of the instructions of a 10,000-zone audit.
pub(crate) fn write_pretty(out: &mut impl std::io::Write, value: &impl Serialize) -> std::io::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(out, Pretty { level: 0, has_value: false });
    value.serialize(&mut ser).map_err(std::io::Error::other)
}

/// serde_json's `PrettyFormatter` with its default indentation of two spaces.
struct Pretty {
    level: usize,
    has_value: bool,
}

impl Pretty {
    /// A line break and the indentation of the current level.
    fn new_line<W: ?Sized + std::io::Write>(&self, w: &mut W) -> std::io::Result<()> {
        const LINE: &[u8] = b"\n                                                                ";
        let mut spaces = 2 * self.level;
        let first = spaces.min(LINE.len() - 1);
        w.write_all(&LINE[..1 + first])?;
        spaces -= first;
        while spaces > 0 {
            let n = spaces.min(LINE.len() - 1);
            w.write_all(&LINE[1..1 + n])?;
            spaces -= n;
        }
        Ok(())
    }

    fn open<W: ?Sized + std::io::Write>(&mut self, w: &mut W, bracket: &[u8]) -> std::io::Result<()> {
        self.level += 1;
        self.has_value = false;
        w.write_all(bracket)
    }

    fn close<W: ?Sized + std::io::Write>(&mut self, w: &mut W, bracket: &[u8]) -> std::io::Result<()> {
        self.level -= 1;
        if self.has_value {
            self.new_line(w)?;
        }
        w.write_all(bracket)
    }

    fn item<W: ?Sized + std::io::Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        if !first {
            w.write_all(b",")?;
        }
        self.new_line(w)
    }
}

impl serde_json::ser::Formatter for Pretty {
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.open(w, b"[")
    }
    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.close(w, b"]")
    }
    fn begin_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        self.item(w, first)
    }
    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.open(w, b"{")
    }
    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.close(w, b"}")
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        self.item(w, first)
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

fn target_reports(inv: &Inventory, obs: &Observation) -> Vec<TargetReport> {
    // Ports each name is probed on: those of its SRV records and its inventory port.
    let mut ports: BTreeMap<&DnsName, Vec<u16>> = BTreeMap::new();
    for r in obs.zones.iter().flat_map(|z| &z.servers).filter_map(|s| s.srv.known_records()).flatten() {
        ports.entry(&r.target).or_default().push(r.port);
    }
    for h in &inv.hosts {
        if obs.names.contains_key(&h.name) {
            ports.entry(&h.name).or_default().push(h.port);
        }
    }
    obs.names
        .iter()
        .map(|(name, res)| {
            let mut name_ports = ports.get(name).cloned().unwrap_or_default();
            name_ports.sort();
            name_ports.dedup();
            let (resolution, error, probes) = match res {
                Resolution::Addresses { addresses, .. } => {
                    let probes = addresses
                        .iter()
                        .flat_map(|a| name_ports.iter().map(move |p| SocketAddr::new(*a, *p)))
                        .map(|ep| {
                            let (state, detail) = match obs.probes.get(&ep) {
                                Some(ProbeState::KmsUp) => ("kms-up", None),
                                Some(ProbeState::NotKms(d)) => ("not-kms", Some(d.clone())),
                                Some(ProbeState::Down(d)) => ("down", Some(d.clone())),
                                None => ("unprobed", None),
                            };
                            ProbeReport { endpoint: ep, state, detail }
                        })
                        .collect();
                    ("addresses", None, probes)
                }
                Resolution::NoAddress => ("no-address", None, vec![]),
                Resolution::Failed { error } => ("failed", Some(error.clone()), vec![]),
            };
            TargetReport { name: name.clone(), resolution, error, probes }
        })
        .collect()
}
