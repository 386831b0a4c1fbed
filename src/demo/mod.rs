//! `kmsdns demo`: a small world on loopback, so the whole pipeline can be seen on a machine
//! with no DNS server and no KMS host.
//!
//! Two embedded authoritative servers (hickory-server, in process, 127.0.0.1, free ports)
//! serve the zone `demo.test` with four `_vlmcs._tcp` records: a healthy KMS host, a
//! decommissioned one, a dead one and a rogue one. In-process responders answer the KMS bind.
//! Both servers share one zone store that accepts TSIG-signed RFC 2136 updates, as a primary
//! and a secondary that converge at once would. The inventory, the TSIG key and the journal
//! live in a temporary directory, removed when the [`DemoWorld`] is dropped.
//!
//! [`run`] then shows the whole pipeline: audit, plan, repair, and the audit after.

pub mod responder;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hickory_net::runtime::TokioRuntimeProvider;
use hickory_proto::rr::rdata::{A, NS, SOA, SRV};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordSet, RrKey};
use hickory_server::Server;
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::store::sqlite::SqliteZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};

use crate::apply::Mode;

use crate::cycle::ZoneOutcome;
use crate::cycle::{self, Carry};
use crate::demo::responder::{Behaviour, KmsResponder};
use crate::inventory::{Inventory, TsigAlgorithmName};
use crate::journal::Journal;
use crate::keys::TsigKey;
use crate::name::DnsName;
use crate::plan::Plan;
use crate::report::{AuditReport, repair_text, zone_plan_text};

pub const ZONE: &str = "demo.test";
const KEY_NAME: &str = "kmsdns-demo";

/// The running demo: servers, responders and the inventory file.
pub struct DemoWorld {
    pub dir: tempfile::TempDir,
    pub inventory: PathBuf,
    pub servers: Vec<SocketAddr>,
    _dns: Vec<Server<Catalog>>,
    _responders: Vec<KmsResponder>,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo: cannot set up {what}: {source}")]
    Io { what: &'static str, source: std::io::Error },
    #[error("demo: cannot build the demo zone: {0}")]
    Zone(String),
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> DemoError {
    move |source| DemoError::Io { what, source }
}

/// One demo host: its label, last address octet, how it answers (None: nothing listens),
/// and its inventory entry (None: unknown to the inventory).
const HOSTS: [(&str, u8, Option<Behaviour>, Option<&str>); 4] = [
    ("kms1", 1, Some(Behaviour::Kms), Some("active")),
    // A standby host: once its dead record is gone, nothing more is asked of it (an active
    // one that is down stays a finding, `active-host-down`, until it is back).
    ("kms2", 2, None, Some("standby")),
    ("kms-old", 3, Some(Behaviour::Kms), Some("decommissioned")),
    ("desk42", 4, Some(Behaviour::Kms), None),
];

impl DemoWorld {
    /// Starts the demo world. Must be called inside a tokio runtime.
    pub async fn start() -> Result<DemoWorld, DemoError> {
        let dir = tempfile::Builder::new().prefix("kmsdns-demo-").tempdir().map_err(io("a temporary directory"))?;
        let base = free_block()?;
        let ip = |last: u8| Ipv4Addr::new(127, 77, base, last);

        let mut responders = Vec::new();
        for (_, last, behaviour, _) in HOSTS {
            if let Some(b) = behaviour {
                responders
                    .push(KmsResponder::start(SocketAddr::from((ip(last), 1688)), b).map_err(io("a KMS responder"))?);
            }
        }

        let secret = demo_secret()?;
        let key_file = dir.path().join("kmsdns.key");
        write_private(&key_file, &bind_key_file(&secret))?;
        let zone = zone_handler(&ip, &secret)?;
        let mut dns = Vec::new();
        let mut servers = Vec::new();
        for _ in 0..2 {
            let (udp, tcp, addr) = dns_sockets().await?;
            let mut catalog = Catalog::new();
            catalog.upsert(LowerName::from(&zone.0), vec![zone.1.clone()]);
            let mut server = Server::new(catalog);
            server.register_socket(udp);
            server.register_listener(tcp, Duration::from_secs(5), 4096);
            dns.push(server);
            servers.push(addr);
        }

        let inventory = dir.path().join("kmsdns.toml");
        std::fs::write(&inventory, inventory_text(&servers, &key_file, &dir.path().join("state")))
            .map_err(io("the demo inventory"))?;
        Ok(DemoWorld { dir, inventory, servers, _dns: dns, _responders: responders })
    }
}

/// A UDP socket and a TCP listener on the same free port of 127.0.0.1. The kernel picks a
/// free UDP port; TCP may have that port taken by someone else, so a few ports are tried.
async fn dns_sockets() -> Result<(tokio::net::UdpSocket, tokio::net::TcpListener, SocketAddr), DemoError> {
    let mut last = None;
    for _ in 0..32 {
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.map_err(io("a DNS server socket"))?;
        let addr = udp.local_addr().map_err(io("a DNS server socket"))?;
        match tokio::net::TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((udp, tcp, addr)),
            Err(e) => last = Some(e),
        }
    }
    Err(DemoError::Io {
        what: "a DNS server socket",
        source: last.unwrap_or_else(|| std::io::Error::other("no free port")),
    })
}

/// A third octet `b` for which 127.77.b.1-4 have port 1688 free, so the demo's KMS hosts
/// listen on the real KMS port without colliding with anything already running.
fn free_block() -> Result<u8, DemoError> {
    (0..=255u8)
        .find(|b| (1..=4).all(|last| TcpListener::bind((Ipv4Addr::new(127, 77, *b, last), 1688)).is_ok()))
        .ok_or_else(|| DemoError::Io {
            what: "KMS responders",
            source: std::io::Error::other("no 127.77.x.0/24 block has port 1688 free"),
        })
}

/// The demo zone, in a store that takes updates signed with the demo key.
fn zone_handler(ip: &dyn Fn(u8) -> Ipv4Addr, secret: &[u8]) -> Result<(Name, Arc<dyn ZoneHandler>), DemoError> {
    let origin = Name::from_ascii(format!("{ZONE}.")).map_err(|e| DemoError::Zone(e.to_string()))?;
    let name = |label: &str| -> Result<Name, DemoError> {
        Name::from_ascii(format!("{label}.{ZONE}.")).map_err(|e| DemoError::Zone(e.to_string()))
    };
    let mut records: Vec<Record> = vec![
        Record::from_rdata(
            origin.clone(),
            3600,
            RData::SOA(SOA::new(name("ns1")?, name("hostmaster")?, 1, 3600, 600, 86400, 300)),
        ),
        Record::from_rdata(origin.clone(), 3600, RData::NS(NS(name("ns1")?))),
        Record::from_rdata(name("ns1")?, 3600, RData::A(A(Ipv4Addr::LOCALHOST))),
    ];
    for (label, last, _, _) in HOSTS {
        records.push(Record::from_rdata(name(label)?, 3600, RData::A(A(ip(last)))));
        records.push(Record::from_rdata(name("_vlmcs._tcp")?, 3600, RData::SRV(SRV::new(0, 0, 1688, name(label)?))));
    }
    let mut sets: BTreeMap<RrKey, RecordSet> = BTreeMap::new();
    for r in records {
        let key = RrKey::new(LowerName::from(&r.name), r.record_type());
        sets.entry(key).or_insert_with(|| RecordSet::new(r.name.clone(), r.record_type(), 1)).insert(r, 1);
    }
    let memory = InMemoryZoneHandler::<TokioRuntimeProvider>::new(
        origin.clone(),
        sets,
        ZoneType::Primary,
        AxfrPolicy::Deny,
        None,
    )
    .map_err(DemoError::Zone)?;
    let mut store = SqliteZoneHandler::new(memory, AxfrPolicy::Deny, true, false);
    let signer =
        TsigKey::new(key_name(), TsigAlgorithmName::HmacSha256, secret.to_vec()).signer().map_err(DemoError::Zone)?;
    store.set_tsig_signers(vec![signer]);
    Ok((origin, Arc::new(store)))
}

fn key_name() -> DnsName {
    DnsName::parse(KEY_NAME).unwrap_or_else(|_| unreachable!("the demo key name is a valid DNS name"))
}

/// 32 random bytes for the demo's TSIG key.
fn demo_secret() -> Result<Vec<u8>, DemoError> {
    use ring::rand::SecureRandom;
    let mut secret = vec![0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut secret)
        .map_err(|_| DemoError::Zone("no randomness for the demo key".into()))?;
    Ok(secret)
}

fn bind_key_file(secret: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
    format!("key \"{KEY_NAME}\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{b64}\";\n}};\n")
}

/// Writes a file only its owner can read, as kmsdns requires of secrets.
fn write_private(path: &std::path::Path, text: &str) -> Result<(), DemoError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(io("the demo key"))?;
    f.write_all(text.as_bytes()).map_err(io("the demo key"))
}

fn inventory_text(servers: &[SocketAddr], key_file: &std::path::Path, state_dir: &std::path::Path) -> String {
    let servers: Vec<String> = servers.iter().map(|s| format!("\"{s}\"")).collect();
    let mut t = format!(
        r#"# The demo's inventory: what the DNS should say.
[defaults]
timeout = "1s"
retries = 1
propagation_timeout = "5s"

[daemon]
state_dir = "{state}"

[[key]]
name = "{KEY_NAME}"
algorithm = "hmac-sha256"
secret_file = "{key}"

[[zone]]
name = "{ZONE}"
servers = [{servers}]
primary = {primary}
update_key = "{KEY_NAME}"
policy = "repair"
remove_unknown = true
max_deletes = 3
"#,
        state = state_dir.display(),
        key = key_file.display(),
        servers = servers.join(", "),
        primary = servers[0],
    );
    for (label, _, _, state) in HOSTS {
        if let Some(state) = state {
            let zones = if state == "decommissioned" { String::new() } else { format!("\"{ZONE}\"") };
            t.push_str(&format!("\n[[host]]\nname = \"{label}.{ZONE}\"\nzones = [{zones}]\nstate = \"{state}\"\n"));
        }
    }
    t
}

/// What the demo showed, for `--format json`.
#[derive(Debug, serde::Serialize)]
pub struct Transcript<'a> {
    pub schema: u32,
    pub before: &'a AuditReport<'a>,
    pub plan: &'a Plan,
    pub repair: &'a [ZoneOutcome],
    pub after: &'a AuditReport<'a>,
}

/// Runs the pipeline on the demo world: audit, plan, repair (applied, journaled in the demo's
/// state directory), audit again. Returns the text or JSON to print, and whether the repair
/// left the zone clean.
pub async fn run(world: &DemoWorld, json: bool, colour: bool) -> Result<(String, bool), String> {
    let inv = Inventory::load(&world.inventory).map_err(|e| e.to_string())?;
    let journal = Journal::open(&inv.state_dir).map_err(|e| e.to_string())?;
    let stamp = || humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();

    let seen = cycle::observe(&inv).await;
    let before = AuditReport::new(&inv, &seen.obs, seen.findings.clone(), stamp());
    let plan = cycle::plan(&inv, &seen);
    let outcomes = cycle::carry_out(&inv, &seen, plan.clone(), Mode::Apply(&journal), Carry::Planned).await;
    let again = cycle::observe(&inv).await;
    let after = AuditReport::new(&inv, &again.obs, again.findings, stamp());
    let clean = after.summary.exit_code == 0;

    if json {
        let t = Transcript {
            schema: crate::report::SCHEMA,
            before: &before,
            plan: &plan,
            repair: &outcomes,
            after: &after,
        };
        return Ok((serde_json::to_string_pretty(&t).unwrap_or_default() + "\n", clean));
    }
    let mut out = String::new();
    out.push_str("== 1. kmsdns audit: what the DNS says, and what is wrong ==\n\n");
    out.push_str(&before.to_text(100, colour));
    out.push_str("\n== 2. kmsdns plan: the changes that fix it ==\n\n");
    for z in &plan.zones {
        zone_plan_text(&mut out, z, 100);
    }
    out.push_str("\n== 3. kmsdns repair --apply: one signed, prerequisite-guarded UPDATE ==\n\n");
    out.push_str(&repair_text(&outcomes, 100));
    out.push_str("== 4. kmsdns audit, again ==\n\n");
    out.push_str(&after.to_text(100, colour));
    Ok((out, clean))
}
