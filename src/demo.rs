//! `kmsdns demo`: a small world on loopback, so the whole pipeline can be seen on a machine
//! with no DNS server and no KMS host.
//!
//! Two embedded authoritative servers (hickory-server, in process, 127.0.0.1, free ports)
//! serve the zone `demo.test` with four `_vlmcs._tcp` records: a healthy KMS host, a
//! decommissioned one, a dead one and a rogue one. In-process responders answer the KMS bind.
//! The inventory is written to a temporary directory, where it can be read while the demo
//! runs; everything is removed when the [`DemoWorld`] is dropped.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::rdata::{A, NS, SOA, SRV};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordSet, RrKey};
use hickory_server::Server;
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};

use crate::responder::{Behaviour, KmsResponder};

pub const ZONE: &str = "demo.test";

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
    ("kms2", 2, None, Some("active")),
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

        let mut dns = Vec::new();
        let mut servers = Vec::new();
        for _ in 0..2 {
            let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.map_err(io("a DNS server socket"))?;
            let addr = udp.local_addr().map_err(io("a DNS server socket"))?;
            let tcp = tokio::net::TcpListener::bind(addr).await.map_err(io("a DNS server socket"))?;
            let mut server = Server::new(catalog(&ip)?);
            server.register_socket(udp);
            server.register_listener(tcp, Duration::from_secs(5), 4096);
            dns.push(server);
            servers.push(addr);
        }

        let inventory = dir.path().join("kmsdns.toml");
        std::fs::write(&inventory, inventory_text(&servers)).map_err(io("the demo inventory"))?;
        Ok(DemoWorld { dir, inventory, servers, _dns: dns, _responders: responders })
    }
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

fn catalog(ip: &dyn Fn(u8) -> Ipv4Addr) -> Result<Catalog, DemoError> {
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
    let zone = InMemoryZoneHandler::<hickory_net::runtime::TokioRuntimeProvider>::new(
        origin.clone(),
        sets,
        ZoneType::Primary,
        AxfrPolicy::Deny,
    )
    .map_err(DemoError::Zone)?;
    let mut catalog = Catalog::new();
    let handler: Arc<dyn ZoneHandler> = Arc::new(zone);
    catalog.upsert(LowerName::from(&origin), vec![handler]);
    Ok(catalog)
}

fn inventory_text(servers: &[SocketAddr]) -> String {
    let servers: Vec<String> = servers.iter().map(|s| format!("\"{s}\"")).collect();
    let mut t = format!(
        "# The demo's inventory: what the DNS should say.\n[defaults]\ntimeout = \"1s\"\nretries = 1\n\n[[zone]]\nname = \"{ZONE}\"\nservers = [{}]\n",
        servers.join(", ")
    );
    for (label, _, _, state) in HOSTS {
        if let Some(state) = state {
            let zones = if state == "decommissioned" { String::new() } else { format!("\"{ZONE}\"") };
            t.push_str(&format!("\n[[host]]\nname = \"{label}.{ZONE}\"\nzones = [{zones}]\nstate = \"{state}\"\n"));
        }
    }
    t
}
