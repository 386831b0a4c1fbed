//! A KMS estate with one of every problem kmsdns reports, on real BIND servers and in-test
//! KMS responders, and the inventory that describes what it should look like.
//!
//! | zone        | servers                              | what is wrong                                   |
//! |-------------|--------------------------------------|-------------------------------------------------|
//! | corp.test   | primary + secondary (NOTIFY)         | decommissioned, rogue, unresolvable, dead,      |
//! |             |                                      | not-KMS and drifted records; kms3 unpublished   |
//! | branch.test | two independent primaries            | kms5 added on one only: divergence              |
//! | lab.test    | the corp.test pair                   | its only target is dead: no healthy host        |
//! | gone.test   | a port where nothing listens         | unreachable                                     |

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use kmsdns::demo::responder::{Behaviour, KmsResponder};

use super::{BindLab, ZoneSpec, free_port, loopback_ip};

pub struct Estate {
    pub corp: BindLab,
    pub branch: BindLab,
    pub gone: SocketAddr,
    pub inventory: PathBuf,
    pub responders: Vec<KmsResponder>,
}

/// Hosts of the estate: label, how it answers on 1688 (None: nothing listens).
const HOSTS: [(&str, Option<Behaviour>); 9] = [
    ("kms1", Some(Behaviour::Kms)),
    ("kms2", None),
    ("kms3", Some(Behaviour::Kms)),
    ("kms4", Some(Behaviour::Kms)),
    ("kms5", Some(Behaviour::Kms)),
    ("old", Some(Behaviour::Kms)),
    ("rogue", Some(Behaviour::Kms)),
    ("web", Some(Behaviour::NotRpc)),
    ("lab1", None),
];

impl Estate {
    pub fn every_finding() -> Estate {
        let mut corp = ZoneSpec::new("corp.test");
        let mut responders = Vec::new();
        for (label, behaviour) in HOSTS {
            let (ip, kms_port) = loopback_ip();
            corp = corp.record(&format!("{label} 3600 IN A {ip}"));
            if let Some(b) = behaviour {
                responders.push(KmsResponder::from_listener(kms_port, b).expect("start a KMS responder"));
            }
        }
        for target in ["kms1", "kms2", "old", "rogue", "ghost", "web"] {
            corp = corp.record(&format!("_vlmcs._tcp 3600 IN SRV 0 0 1688 {target}.corp.test."));
        }
        corp = corp.record("_vlmcs._tcp 3600 IN SRV 5 0 1688 kms4.corp.test.");
        let lab = ZoneSpec::new("lab.test").record("_vlmcs._tcp 3600 IN SRV 0 0 1688 lab1.corp.test.");
        let corp_lab = BindLab::primary_secondary(&[corp, lab]);

        let branch = ZoneSpec::new("branch.test").record("_vlmcs._tcp 3600 IN SRV 0 0 1688 kms1.corp.test.");
        let branch_lab = BindLab::independent_primaries(&[branch], 2);
        branch_lab.update(
            0,
            "branch.test",
            &["update add _vlmcs._tcp.branch.test. 3600 IN SRV 0 0 1688 kms5.corp.test."],
        );

        let gone = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let inventory = corp_lab.dir.path().join("kmsdns.toml");
        let text = inventory_text(&corp_lab, &branch_lab, gone);
        std::fs::write(&inventory, text).expect("write the estate's inventory");
        Estate { corp: corp_lab, branch: branch_lab, gone, inventory, responders }
    }
}

fn servers(lab: &BindLab) -> String {
    lab.servers.iter().map(|s| format!("\"{}\"", s.addr)).collect::<Vec<_>>().join(", ")
}

fn inventory_text(corp: &BindLab, branch: &BindLab, gone: SocketAddr) -> String {
    format!(
        r#"[defaults]
timeout = "500ms"
retries = 1

[[zone]]
name = "corp.test"
servers = [{corp}]

[[zone]]
name = "branch.test"
servers = [{branch}]

[[zone]]
name = "lab.test"
servers = [{corp}]

[[zone]]
name = "gone.test"
servers = ["{gone}"]

[[host]]
name = "kms1.corp.test"
zones = ["corp.test", "branch.test"]
state = "active"

[[host]]
name = "kms2.corp.test"
zones = ["corp.test"]
state = "active"

[[host]]
name = "kms3.corp.test"
zones = ["corp.test"]
state = "active"

[[host]]
name = "kms4.corp.test"
zones = ["corp.test"]
state = "active"

[[host]]
name = "kms5.corp.test"
zones = ["branch.test"]
state = "standby"

[[host]]
name = "web.corp.test"
zones = ["corp.test"]
state = "standby"

[[host]]
name = "lab1.corp.test"
zones = ["lab.test"]
state = "active"

[[host]]
name = "old.corp.test"
zones = []
state = "decommissioned"
"#,
        corp = servers(corp),
        branch = servers(branch),
    )
}
