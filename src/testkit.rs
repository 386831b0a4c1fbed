//! A hand-built world for the pure core's tests: an inventory, what two servers answer, and
//! how each host fares. Shared by the audit and plan tests.

use std::net::{IpAddr, SocketAddr};

use crate::audit::{Finding, audit};
use crate::inventory::Inventory;
use crate::model::{Observation, ProbeState, ReadError, Resolution, ServerView, SrvAnswer, SrvRecord, ZoneView};
use crate::name::DnsName;

const INVENTORY: &str = r#"
[[zone]]
name = "corp.test"
servers = ["127.0.0.1:5300", "127.0.0.1:5301"]

[[host]]
name = "kms1.corp.test"
zones = ["corp.test"]
state = "active"

[[host]]
name = "kms2.corp.test"
zones = ["corp.test"]
state = "active"

[[host]]
name = "spare.corp.test"
zones = ["corp.test"]
state = "standby"

[[host]]
name = "old.corp.test"
zones = []
state = "decommissioned"
"#;

pub fn name(s: &str) -> DnsName {
    DnsName::parse(s).unwrap()
}

pub fn srv(target: &str) -> SrvRecord {
    SrvRecord { target: name(target), port: 1688, priority: 0, weight: 0, ttl: 3600 }
}

pub fn records(targets: &[&str]) -> SrvAnswer {
    if targets.is_empty() {
        return SrvAnswer::NxDomain;
    }
    SrvAnswer::Records { records: targets.iter().map(|t| srv(t)).collect() }
}

pub fn failed(e: ReadError) -> SrvAnswer {
    SrvAnswer::Failed { error: e }
}

/// (code, server, target) of a finding.
pub type Row = (&'static str, Option<String>, Option<String>);

/// A world built by hand: what each of the two servers answers, and how each host fares.
pub struct World {
    pub inv: Inventory,
    pub obs: Observation,
}

impl World {
    /// Both servers serve `targets`; every host of the inventory is up on 1688.
    pub fn new(targets: &[&str]) -> World {
        Self::with_zone_settings("", targets)
    }

    /// Like [`World::new`], with extra `key = value` lines in the zone's table.
    pub fn with_zone_settings(settings: &str, targets: &[&str]) -> World {
        let text = INVENTORY.replacen(
            "servers = [\"127.0.0.1:5300\", \"127.0.0.1:5301\"]\n",
            &format!("servers = [\"127.0.0.1:5300\", \"127.0.0.1:5301\"]\n{settings}\n"),
            1,
        );
        let inv = Inventory::from_toml(&text).unwrap_or_else(|p| panic!("{p:?}"));
        let servers = inv.zones[0]
            .servers
            .iter()
            .map(|s| ServerView { server: s.clone(), srv: records(targets), serial: Ok(7), mname: None })
            .collect();
        let mut w = World {
            obs: Observation {
                zones: vec![ZoneView { zone: name("corp.test"), servers }],
                // No other instance has written a view.
                peers: [(name("corp.test"), crate::peers::PeerViews::Read { entries: vec![] })].into(),
                ..Default::default()
            },
            inv,
        };
        for (i, h) in ["kms1", "kms2", "spare", "old"].iter().enumerate() {
            w = w.host(&format!("{h}.corp.test"), i as u8 + 1, Some(ProbeState::KmsUp));
        }
        w
    }

    pub fn server(mut self, i: usize, answer: SrvAnswer) -> World {
        self.obs.zones[0].servers[i].srv = answer;
        self
    }

    /// `target` resolves to 127.0.0.<last> and its port 1688 is in `state` (None: not probed).
    pub fn host(mut self, target: &str, last: u8, state: Option<ProbeState>) -> World {
        let ip = IpAddr::from([127, 0, 0, last]);
        self.obs.names.insert(name(target), Resolution::Addresses { addresses: vec![ip], incomplete: None });
        match state {
            Some(s) => self.obs.probes.insert(SocketAddr::new(ip, 1688), s),
            None => self.obs.probes.remove(&SocketAddr::new(ip, 1688)),
        };
        self
    }

    /// Another instance's entry in corp.test's shared view: `id` sees `alive` alive and
    /// `dead` dead, `age` seconds before the observation.
    pub fn peer(mut self, id: &str, age: u64, alive: &[&str], dead: &[&str]) -> World {
        use crate::peers::{Entry, InstanceId, PeerViews, Sight};
        let now = 1_800_000_000;
        self.obs.observed_at = Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(now));
        let entry = Entry {
            id: InstanceId::parse(id).unwrap(),
            at: now - age,
            sight: Sight::Hosts {
                alive: alive.iter().map(|n| name(n)).collect(),
                dead: dead.iter().map(|n| name(n)).collect(),
            },
        };
        match self.obs.peers.entry(name("corp.test")).or_insert(PeerViews::Read { entries: vec![] }) {
            PeerViews::Read { entries } => entries.push(entry),
            unknown => *unknown = PeerViews::Read { entries: vec![entry] },
        }
        self
    }

    /// corp.test's shared view could not be read.
    pub fn peers_unknown(mut self, why: &str) -> World {
        self.obs.peers.insert(name("corp.test"), crate::peers::PeerViews::Unknown { why: why.into() });
        self
    }

    pub fn resolution(mut self, target: &str, r: Resolution) -> World {
        self.obs.names.insert(name(target), r);
        self
    }

    pub fn findings(&self) -> Vec<Finding> {
        audit(&self.inv, &self.obs)
    }

    /// (code, server, target) of each finding, for compact assertions.
    pub fn summary(&self) -> Vec<Row> {
        self.findings().into_iter().map(|f| (f.code.as_str(), f.server, f.target.map(|t| t.to_string()))).collect()
    }
}
