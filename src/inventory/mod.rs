//! The inventory: what the DNS should say about KMS hosts, read from TOML and validated.
//!
//! The keys are a contract with the admins who write the file, so parsing is strict: an unknown
//! key, a wrong type or an inconsistent entry is an error naming the file, line, column and key,
//! never a silent default. All problems found are reported at once, so one run of
//! `kmsdns check-config` shows everything to fix.
//!
//! The model is in this file; `raw.rs` holds the TOML as written (serde), `validate.rs` turns
//! it into the model collecting every problem, and `error.rs` places each problem at its line,
//! column and key.

mod error;
mod raw;
mod validate;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::name::DnsName;
pub use error::{ConfigError, Problem};
use error::{TOML_KEY_LIMIT, first_line, key_path_at, too_deep_key};
use raw::RawInventory;
use validate::validate;

/// The validated desired state.
#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    pub defaults: Defaults,
    pub zones: Vec<Zone>,
    pub hosts: Vec<KmsHost>,
    /// TSIG keys that updates may be signed with.
    pub keys: Vec<KeySpec>,
    /// Where the journal of changes lives (`[daemon] state_dir`).
    pub state_dir: PathBuf,
    /// How `kmsdns run` paces itself.
    pub daemon: DaemonSettings,
    /// Active Directory, when the zones live there.
    pub ad: Option<AdSettings>,
    /// This instance among others on the same zones (`[instance]`, [`crate::peers`]).
    pub instance: crate::peers::InstanceSettings,
    /// Where each zone is in `zones`, for [`Inventory::zone`].
    zone_index: ZoneIndex,
}

/// Each zone's position in [`Inventory::zones`], made on the first lookup: a daemon cycle looks
/// every zone up, and a scan per lookup made 10,000 zones 50 million name comparisons.
/// `zones` is public and may change after the index is made: a position that holds another
/// zone, or a name the index lacks, falls back to a scan, so a stale index is slower, never
/// wrong. It takes no part in comparing inventories.
#[derive(Debug, Clone, Default)]
struct ZoneIndex(std::sync::OnceLock<std::collections::HashMap<DnsName, usize>>);

impl PartialEq for ZoneIndex {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// The `[ad]` table: where and how to read the DNS zones stored in Active Directory.
#[derive(Debug, Clone, PartialEq)]
pub struct AdSettings {
    /// Domain controllers, read one after another until one answers. `ldaps://` is LDAP over
    /// TLS; `ldap://` is upgraded with StartTLS.
    pub urls: Vec<String>,
    /// The CA that signed the DCs' certificates (PEM); the system roots when absent.
    pub ca_file: Option<PathBuf>,
    /// Verify the DC's certificate (default true; false only when asked, for a lab).
    pub tls_verify: bool,
    pub bind_dn: String,
    /// A file holding the bind password alone; refused when group or others can read it.
    pub password_file: PathBuf,
    /// The group that may update `_vlmcs._tcp` (Microsoft's fix); `repair --acl` grants it.
    pub kms_group: Option<String>,
    /// The Kerberos principal GSS-TSIG updates are made as; the ccache's default when absent.
    pub principal: Option<String>,
    /// A keytab for that principal (the service's own account); the ambient ccache when absent.
    pub keytab: Option<PathBuf>,
}

/// The `[daemon]` table: the timers and hysteresis of `kmsdns run`.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonSettings {
    /// A full audit (and repair, for zones that allow it) this often.
    pub interval: Duration,
    /// Every SRV target and inventory host is probed this often.
    pub probe_interval: Duration,
    /// Failed probes in a row, spanning `(fail_after − 1) × probe_interval`, before a host
    /// counts as dead ([`crate::daemon::health`]).
    pub fail_after: u32,
    /// Good probes in a row, spanning `(recover_after − 1) × probe_interval`, before a dead
    /// (or new) host counts as alive.
    pub recover_after: u32,
    /// Where Prometheus metrics are served; none when absent.
    pub metrics: Option<SocketAddr>,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        DaemonSettings {
            interval: Duration::from_secs(60),
            probe_interval: Duration::from_secs(10),
            fail_after: 3,
            recover_after: 2,
            metrics: None,
        }
    }
}

/// The default `[daemon] state_dir`.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/kmsdns";

/// A TSIG key as the inventory names it; the secret stays in its file until an update needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpec {
    /// The key's name as the DNS server knows it.
    pub name: DnsName,
    pub algorithm: TsigAlgorithmName,
    /// A base64 secret, or a BIND key file.
    pub secret_file: PathBuf,
}

/// The HMAC algorithms a TSIG key may use (hickory signs only these; MD5 and SHA-1 are gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum TsigAlgorithmName {
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    #[serde(rename = "hmac-sha384")]
    HmacSha384,
    #[serde(rename = "hmac-sha512")]
    HmacSha512,
}

impl TsigAlgorithmName {
    pub fn as_str(self) -> &'static str {
        match self {
            TsigAlgorithmName::HmacSha256 => "hmac-sha256",
            TsigAlgorithmName::HmacSha384 => "hmac-sha384",
            TsigAlgorithmName::HmacSha512 => "hmac-sha512",
        }
    }
}

/// Settings shared by every zone and host unless they say otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    /// TTL of the SRV records kmsdns writes.
    pub ttl: u32,
    /// The KMS port (1688 unless the hosts were set up with another).
    pub port: u16,
    /// One DNS exchange or one probe attempt.
    pub timeout: Duration,
    /// Further attempts after a timeout.
    pub retries: u8,
    /// Reads in flight at once: a zone on one server (SRV, SOA and shared view: three
    /// questions), a name's addresses, or a KMS probe.
    pub concurrency: usize,
    /// How long a repair waits for every server of a zone to serve the new RRset.
    pub propagation_timeout: Duration,
    /// Probes a one-shot repair makes of a target before it deletes it as dead or not KMS:
    /// every one must fail. (The daemon's hysteresis is its confirmation.)
    pub confirm_probes: u32,
    /// The time those probes are spread over.
    pub confirm_window: Duration,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            ttl: 3600,
            port: 1688,
            timeout: Duration::from_secs(2),
            retries: 2,
            concurrency: 64,
            propagation_timeout: Duration::from_secs(30),
            confirm_probes: 3,
            confirm_window: Duration::from_secs(2),
        }
    }
}

/// A zone in which KMS hosts publish `_vlmcs._tcp`.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    pub name: DnsName,
    /// Its authoritative servers, each asked directly.
    pub servers: Vec<ServerAddr>,
    pub policy: Policy,
    /// Where updates go; `None`: the server named by the SOA MNAME, port 53.
    pub primary: Option<ServerAddr>,
    /// The TSIG key updates are signed with; `None` with GSS-TSIG or `allow_unsigned`.
    pub update_key: Option<DnsName>,
    /// `update_auth = "gss-tsig"`: updates are signed with Kerberos (RFC 3645).
    pub gss_tsig: bool,
    pub allow_unsigned: bool,
    /// Delete SRV records of hosts the inventory does not know (default: report only).
    pub remove_unknown: bool,
    /// At most this many records removed per run.
    pub max_deletes: usize,
}

/// What kmsdns may do to a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Report and plan only.
    Audit,
    /// Apply the plan.
    Repair,
}

/// A KMS host as the inventory knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct KmsHost {
    pub name: DnsName,
    /// The zones it publishes in (as its DnsDomainPublishList says).
    pub zones: Vec<DnsName>,
    pub state: HostState,
    pub port: u16,
    pub priority: u16,
    pub weight: u16,
    /// Its computer account in Active Directory (sAMAccountName, "KMS1$"), for the ACL check.
    pub account: Option<String>,
}

/// The lifecycle of a KMS host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HostState {
    /// Must be published in each of its zones while it answers as a KMS host.
    Active,
    /// Known; may be published, need not be, never reported as rogue.
    Standby,
    /// Must not be published anywhere.
    Decommissioned,
}

/// An authoritative server: an address or a host name, and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerAddr {
    pub host: ServerHost,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServerHost {
    Ip(IpAddr),
    Name(DnsName),
}

impl ServerAddr {
    /// Parses `192.0.2.10`, `192.0.2.10:5300`, `2001:db8::1`, `[2001:db8::1]:53`,
    /// `dc2.corp.example.com` or `dc2.corp.example.com:53`.
    pub fn parse(text: &str) -> Result<ServerAddr, String> {
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(ServerAddr { host: ServerHost::Ip(ip), port: 53 });
        }
        if let Some(ip) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).and_then(|t| t.parse().ok()) {
            return Ok(ServerAddr { host: ServerHost::Ip(IpAddr::V6(ip)), port: 53 });
        }
        if let Ok(sa) = text.parse::<SocketAddr>() {
            return match sa.port() {
                0 => Err("'0' is not a port (1-65535)".into()),
                port => Ok(ServerAddr { host: ServerHost::Ip(sa.ip()), port }),
            };
        }
        let (host, port) = match text.rsplit_once(':') {
            Some((h, p)) => {
                let port = p
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("'{p}' is not a port (1-65535)"))?;
                (h, port)
            }
            None => (text, 53),
        };
        // No top-level domain is all digits (RFC 3696 §2), so this is a mistyped address, which
        // the system resolver would otherwise be asked to look up as a name.
        if host
            .trim_end_matches('.')
            .rsplit('.')
            .next()
            .is_some_and(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(format!(
                "'{host}' is not an IPv4 address (each of its four numbers is 0-255), nor a host name (a name does not end in a number)"
            ));
        }
        let name = DnsName::parse(host).map_err(|e| format!("'{host}' is not an address or a host name: {e}"))?;
        Ok(ServerAddr { host: ServerHost::Name(name), port })
    }
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            ServerHost::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            ServerHost::Ip(ip) => write!(f, "{ip}:{}", self.port),
            ServerHost::Name(n) => write!(f, "{n}:{}", self.port),
        }
    }
}

impl Serialize for ServerAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Inventory {
    pub fn zone(&self, name: &DnsName) -> Option<&Zone> {
        let index = self
            .zone_index
            .0
            .get_or_init(|| self.zones.iter().enumerate().rev().map(|(i, z)| (z.name.clone(), i)).collect());
        match index.get(name).and_then(|&i| self.zones.get(i)) {
            Some(z) if &z.name == name => Some(z),
            _ => self.zones.iter().find(|z| &z.name == name),
        }
    }

    pub fn host(&self, name: &DnsName) -> Option<&KmsHost> {
        self.hosts.iter().find(|h| &h.name == name)
    }

    pub fn key(&self, name: &DnsName) -> Option<&KeySpec> {
        self.keys.iter().find(|k| &k.name == name)
    }

    /// The declared zone a name lies in, the deepest one when zones nest.
    pub fn zone_containing(&self, name: &DnsName) -> Option<&Zone> {
        self.zones.iter().filter(|z| name.is_within(&z.name)).max_by_key(|z| z.name.as_str().len())
    }

    /// Reads and validates an inventory file.
    pub fn load(path: &Path) -> Result<Inventory, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_path_buf(),
            problems: vec![Problem {
                line: 0,
                column: 0,
                key: String::new(),
                message: format!("cannot read the file: {e}"),
            }],
        })?;
        Self::from_toml(&text).map_err(|problems| ConfigError { path: path.to_path_buf(), problems })
    }

    /// Parses and validates inventory text; the errors carry positions in `text`.
    pub fn from_toml(text: &str) -> Result<Inventory, Vec<Problem>> {
        let raw: RawInventory = toml::from_str(text).map_err(|e| match e.span() {
            Some(s) => vec![Problem::at(text, s.start, key_path_at(text, s.start), first_line(e.message()))],
            // The parser gives no position for a key of too many parts: find it here.
            None => match too_deep_key(text) {
                Some(at) => vec![Problem::at(
                    text,
                    at,
                    String::new(),
                    format!("this key is nested too deeply (at least {TOML_KEY_LIMIT} dotted parts); inventory keys have at most three"),
                )],
                None => vec![Problem { line: 0, column: 0, key: String::new(), message: first_line(e.message()) }],
            },
        })?;
        validate(text, raw)
    }
}

#[cfg(test)]
mod tests;
