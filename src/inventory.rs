//! The inventory: what the DNS should say about KMS hosts, read from TOML and validated.
//!
//! The keys are a contract with the admins who write the file, so parsing is strict: an unknown
//! key, a wrong type or an inconsistent entry is an error naming the file, line, column and key,
//! never a silent default. All problems found are reported at once, so one run of
//! `kmsdns check-config` shows everything to fix.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::name::DnsName;

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
    /// Exchanges and probes in flight at once.
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
        self.zones.iter().find(|z| &z.name == name)
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

/// A config file that cannot be used, with every problem found in it.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub path: PathBuf,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", self.path.display())?;
            if p.line > 0 {
                write!(f, ":{}:{}", p.line, p.column)?;
            }
            if !p.key.is_empty() {
                write!(f, ": {}", p.key)?;
            }
            write!(f, ": {}", p.message)?;
        }
        Ok(())
    }
}

/// One problem in a config file, at a 1-based line and column (0 when it has no position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    pub key: String,
    pub message: String,
}

impl Problem {
    fn at(text: &str, offset: usize, key: String, message: String) -> Problem {
        let (line, column) = line_column(text, offset);
        Problem { line, column, key, message }
    }
}

/// The most dotted parts a key may have before the `toml` crate gives up ("recursion limit").
const TOML_KEY_LIMIT: usize = 80;

/// The offset of the first line whose key (or table header) has at least [`TOML_KEY_LIMIT`]
/// parts. Quoted parts holding dots are over-counted: this only places an error the parser
/// already reported.
fn too_deep_key(text: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        let key = match t.strip_prefix('[') {
            Some(header) => header.split(']').next().unwrap_or(""),
            None => t.split('=').next().unwrap_or(""),
        };
        if !t.starts_with('#') && key.split('.').count() >= TOML_KEY_LIMIT {
            return Some(offset + (line.len() - t.len()));
        }
        offset += line.len();
    }
    None
}

/// A message's first line, cut to a length a terminal shows: a parser may echo a huge key.
fn first_line(s: &str) -> String {
    shorten(s.lines().next().unwrap_or("").trim())
}

fn shorten(s: &str) -> String {
    const MAX: usize = 200;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}… ({} more bytes)", &s[..cut], s.len() - cut),
        None => s.to_string(),
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, column)
}

/// The dotted key (`host[2].port`) at a byte offset, for errors the TOML parser reports with a
/// position but no key: the key on that line, under the nearest table header above it.
fn key_path_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or("");
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line = text[line_start..].lines().next().unwrap_or("");
    let mut table = String::new();
    let mut counts: Vec<(String, usize)> = Vec::new();
    for l in text[..line_start].lines() {
        let t = l.trim();
        if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim().to_string();
            let n = match counts.iter_mut().find(|(k, _)| *k == name) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    counts.push((name.clone(), 0));
                    0
                }
            };
            table = format!("{name}[{n}]");
        } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            table = name.trim().to_string();
        }
    }
    let key = match line.split_once('=') {
        Some((k, _)) if !line.trim_start().starts_with('[') => k.trim().trim_matches('"').to_string(),
        _ => String::new(),
    };
    shorten(&match (table.is_empty(), key.is_empty()) {
        (true, _) => key,
        (false, true) => table,
        (false, false) => format!("{table}.{key}"),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInventory {
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    daemon: RawDaemon,
    ad: Option<RawAd>,
    #[serde(default)]
    instance: RawInstance,
    #[serde(default)]
    key: Vec<RawKey>,
    #[serde(default)]
    zone: Vec<RawZone>,
    #[serde(default)]
    host: Vec<RawHost>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    ttl: Option<Spanned<i64>>,
    port: Option<Spanned<i64>>,
    timeout: Option<Spanned<String>>,
    retries: Option<Spanned<i64>>,
    concurrency: Option<Spanned<i64>>,
    propagation_timeout: Option<Spanned<String>>,
    confirm_probes: Option<Spanned<i64>>,
    confirm_window: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    state_dir: Option<Spanned<String>>,
    interval: Option<Spanned<String>>,
    probe_interval: Option<Spanned<String>>,
    fail_after: Option<Spanned<i64>>,
    recover_after: Option<Spanned<i64>>,
    metrics: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawInstance {
    id: Option<Spanned<String>>,
    share_view: Option<bool>,
    stale_after: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    name: Spanned<String>,
    algorithm: TsigAlgorithmName,
    secret_file: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawZone {
    name: Spanned<String>,
    servers: Spanned<Vec<Spanned<String>>>,
    policy: Option<Spanned<Policy>>,
    primary: Option<Spanned<String>>,
    update_key: Option<Spanned<String>>,
    update_auth: Option<Spanned<String>>,
    allow_unsigned: Option<Spanned<bool>>,
    remove_unknown: Option<bool>,
    max_deletes: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    name: Spanned<String>,
    zones: Spanned<Vec<Spanned<String>>>,
    state: HostState,
    port: Option<Spanned<i64>>,
    priority: Option<Spanned<i64>>,
    weight: Option<Spanned<i64>>,
    account: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAd {
    urls: Spanned<Vec<Spanned<String>>>,
    ca_file: Option<Spanned<String>>,
    tls_verify: Option<bool>,
    bind_dn: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
    sasl: Option<Spanned<String>>,
    kms_group: Option<Spanned<String>>,
    principal: Option<Spanned<String>>,
    keytab: Option<Spanned<String>>,
}

/// Collects problems while a raw inventory is turned into a valid one.
struct Checker<'a> {
    text: &'a str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn report(&mut self, span: Range<usize>, key: String, message: impl Into<String>) {
        self.problems.push(Problem::at(self.text, span.start, key, message.into()));
    }

    fn name(&mut self, value: &Spanned<String>, key: String) -> Option<DnsName> {
        match DnsName::parse(value.get_ref()) {
            Ok(n) => Some(n),
            Err(e) => {
                self.report(value.span(), key, format!("'{}' is not a valid DNS name: {e}", value.get_ref()));
                None
            }
        }
    }

    fn duration(&mut self, value: &Option<Spanned<String>>, key: &str, range: Range<Duration>) -> Option<Duration> {
        let v = value.as_ref()?;
        match humantime::parse_duration(v.get_ref()) {
            Ok(d) if range.contains(&d) => Some(d),
            Ok(_) => {
                let (lo, hi) = (
                    humantime::format_duration(range.start),
                    humantime::format_duration(range.end - Duration::from_millis(1)),
                );
                self.report(v.span(), key.into(), format!("must be between {lo} and {hi}"));
                None
            }
            Err(e) => {
                self.report(
                    v.span(),
                    key.into(),
                    format!("'{}' is not a duration such as \"2s\" or \"500ms\": {e}", v.get_ref()),
                );
                None
            }
        }
    }

    fn int<T: TryFrom<i64>>(
        &mut self,
        value: &Option<Spanned<i64>>,
        key: String,
        range: Range<i64>,
        what: &str,
    ) -> Option<T> {
        let v = value.as_ref()?;
        let n = *v.get_ref();
        if range.contains(&n) {
            T::try_from(n).ok()
        } else {
            self.report(
                v.span(),
                key,
                format!("{n} is out of range: {what} must be {} to {}", range.start, range.end - 1),
            );
            None
        }
    }
}

/// `[instance]`: the id (default the host name), whether the view is shared, and the bound
/// after which another instance's entry no longer counts (default 3 × the audit interval).
fn validate_instance(c: &mut Checker, r: &RawInstance, daemon: &DaemonSettings) -> crate::peers::InstanceSettings {
    use crate::peers::InstanceId;
    let id = match &r.id {
        Some(v) => InstanceId::parse(v.get_ref()).unwrap_or_else(|e| {
            c.report(v.span(), "instance.id".into(), e);
            InstanceId::from_hostname()
        }),
        None => InstanceId::from_hostname(),
    };
    let ms = Duration::from_millis;
    let stale_after =
        c.duration(&r.stale_after, "instance.stale_after", ms(1000)..ms(86_400_001)).unwrap_or(daemon.interval * 3);
    if let Some(v) = &r.stale_after
        && stale_after < daemon.interval * 2
    {
        c.report(
            v.span(),
            "instance.stale_after".into(),
            format!(
                "must be at least twice daemon.interval ({}): an instance refreshes its entry once per interval at best",
                humantime::format_duration(daemon.interval)
            ),
        );
    }
    crate::peers::InstanceSettings { id, share_view: r.share_view.unwrap_or(true), stale_after }
}

fn validate_ad(c: &mut Checker, a: &RawAd) -> AdSettings {
    let mut urls = Vec::new();
    if a.urls.get_ref().is_empty() {
        c.report(
            a.urls.span(),
            "ad.urls".into(),
            "give at least one domain controller, such as \"ldaps://dc1.corp.example.com\"",
        );
    }
    for (i, u) in a.urls.get_ref().iter().enumerate() {
        let text = u.get_ref();
        if text.starts_with("ldaps://") || text.starts_with("ldap://") {
            urls.push(text.clone());
        } else {
            c.report(u.span(), format!("ad.urls[{i}]"), format!("'{text}' is not an ldaps:// or ldap:// URL"));
        }
    }
    if let Some(s) = &a.sasl {
        c.report(
            s.span(),
            "ad.sasl".into(),
            format!("sasl = \"{}\" is not supported by this build yet: use bind_dn and password_file", s.get_ref()),
        );
    }
    let bind_dn = match &a.bind_dn {
        Some(b) if !b.get_ref().trim().is_empty() => b.get_ref().clone(),
        Some(b) => {
            c.report(b.span(), "ad.bind_dn".into(), "the bind DN is empty");
            String::new()
        }
        None => {
            c.report(a.urls.span(), "ad".into(), "bind_dn is missing: the account kmsdns reads the directory as");
            String::new()
        }
    };
    let password_file = match &a.password_file {
        Some(p) => PathBuf::from(p.get_ref()),
        None => {
            c.report(a.urls.span(), "ad".into(), "password_file is missing: a file holding the bind password");
            PathBuf::new()
        }
    };
    AdSettings {
        urls,
        ca_file: a.ca_file.as_ref().map(|f| PathBuf::from(f.get_ref())),
        tls_verify: a.tls_verify.unwrap_or(true),
        bind_dn,
        password_file,
        kms_group: a.kms_group.as_ref().map(|g| g.get_ref().clone()),
        principal: a.principal.as_ref().map(|p| p.get_ref().clone()),
        keytab: a.keytab.as_ref().map(|k| PathBuf::from(k.get_ref())),
    }
}

fn validate(text: &str, raw: RawInventory) -> Result<Inventory, Vec<Problem>> {
    let mut c = Checker { text, problems: Vec::new() };
    let mut defaults = Defaults::default();
    let d = &raw.defaults;
    if let Some(v) = c.int(&d.ttl, "defaults.ttl".into(), 1..2_147_483_648, "a TTL") {
        defaults.ttl = v;
    }
    if let Some(v) = c.int(&d.port, "defaults.port".into(), 1..65_536, "a port") {
        defaults.port = v;
    }
    if let Some(v) = c.int(&d.retries, "defaults.retries".into(), 0..11, "retries") {
        defaults.retries = v;
    }
    if let Some(v) = c.int(&d.concurrency, "defaults.concurrency".into(), 1..4097, "concurrency") {
        defaults.concurrency = v;
    }
    let ms = Duration::from_millis;
    if let Some(v) = c.duration(&d.timeout, "defaults.timeout", ms(10)..ms(300_001)) {
        defaults.timeout = v;
    }
    if let Some(v) = c.duration(&d.propagation_timeout, "defaults.propagation_timeout", ms(0)..ms(3_600_001)) {
        defaults.propagation_timeout = v;
    }
    if let Some(v) = c.int(&d.confirm_probes, "defaults.confirm_probes".into(), 1..101, "a probe count") {
        defaults.confirm_probes = v;
    }
    if let Some(v) = c.duration(&d.confirm_window, "defaults.confirm_window", ms(0)..ms(600_001)) {
        defaults.confirm_window = v;
    }

    let state_dir = match &raw.daemon.state_dir {
        Some(p) if !Path::new(p.get_ref()).is_absolute() => {
            c.report(p.span(), "daemon.state_dir".into(), format!("'{}' is not an absolute path", p.get_ref()));
            PathBuf::from(DEFAULT_STATE_DIR)
        }
        Some(p) => PathBuf::from(p.get_ref()),
        None => PathBuf::from(DEFAULT_STATE_DIR),
    };

    let mut daemon = DaemonSettings::default();
    let r = &raw.daemon;
    if let Some(v) = c.duration(&r.interval, "daemon.interval", ms(1)..ms(86_400_001)) {
        daemon.interval = v;
    }
    if let Some(v) = c.duration(&r.probe_interval, "daemon.probe_interval", ms(1)..ms(3_600_001)) {
        daemon.probe_interval = v;
    }
    if let Some(v) = c.int(&r.fail_after, "daemon.fail_after".into(), 1..1001, "fail_after") {
        daemon.fail_after = v;
    }
    if let Some(v) = c.int(&r.recover_after, "daemon.recover_after".into(), 1..1001, "recover_after") {
        daemon.recover_after = v;
    }
    if let Some(m) = &r.metrics {
        match m.get_ref().parse::<SocketAddr>() {
            Ok(a) if a.port() == 0 => c.report(
                m.span(),
                "daemon.metrics".into(),
                format!("'{}': port 0 would serve on a port nobody knows; give one such as 9687", m.get_ref()),
            ),
            Ok(a) => daemon.metrics = Some(a),
            Err(_) => c.report(
                m.span(),
                "daemon.metrics".into(),
                format!("'{}' is not an address and port such as \"127.0.0.1:9687\"", m.get_ref()),
            ),
        }
    }

    let ad = raw.ad.as_ref().map(|a| validate_ad(&mut c, a));
    let instance = validate_instance(&mut c, &raw.instance, &daemon);

    let mut keys: Vec<KeySpec> = Vec::new();
    for (i, k) in raw.key.iter().enumerate() {
        let Some(name) = c.name(&k.name, format!("key[{i}].name")) else { continue };
        if keys.iter().any(|o| o.name == name) {
            c.report(k.name.span(), format!("key[{i}].name"), format!("the key '{name}' is declared twice"));
        }
        if k.secret_file.get_ref().is_empty() {
            c.report(k.secret_file.span(), format!("key[{i}].secret_file"), "the secret file path is empty");
        }
        keys.push(KeySpec { name, algorithm: k.algorithm, secret_file: PathBuf::from(k.secret_file.get_ref()) });
    }

    let mut zones = Vec::new();
    let mut seen_zones = HashSet::new();
    for (i, z) in raw.zone.iter().enumerate() {
        let Some(name) = c.name(&z.name, format!("zone[{i}].name")) else { continue };
        if !seen_zones.insert(name.clone()) {
            c.report(z.name.span(), format!("zone[{i}].name"), format!("the zone '{name}' is declared twice"));
        }
        if z.servers.get_ref().is_empty() {
            c.report(
                z.servers.span(),
                format!("zone[{i}].servers"),
                "the server list is empty: give at least one authoritative server",
            );
        }
        let mut servers = Vec::new();
        for (j, s) in z.servers.get_ref().iter().enumerate() {
            match ServerAddr::parse(s.get_ref()) {
                Ok(a) if servers.contains(&a) => {
                    c.report(s.span(), format!("zone[{i}].servers[{j}]"), format!("the server '{a}' is listed twice"))
                }
                Ok(a) => servers.push(a),
                Err(e) => c.report(s.span(), format!("zone[{i}].servers[{j}]"), e),
            }
        }
        let primary = z.primary.as_ref().and_then(|p| match ServerAddr::parse(p.get_ref()) {
            Ok(a) => Some(a),
            Err(e) => {
                c.report(p.span(), format!("zone[{i}].primary"), e);
                None
            }
        });
        let update_key = z.update_key.as_ref().and_then(|k| {
            let key = c.name(k, format!("zone[{i}].update_key"))?;
            if !keys.iter().any(|d| d.name == key) {
                c.report(
                    k.span(),
                    format!("zone[{i}].update_key"),
                    format!("the key '{key}' is not declared: add a [[key]] with name = \"{key}\""),
                );
            }
            Some(key)
        });
        let gss_tsig = match &z.update_auth {
            Some(a) if a.get_ref() == "gss-tsig" => {
                if z.update_key.is_some() {
                    c.report(
                        a.span(),
                        format!("zone[{i}].update_auth"),
                        "give update_auth = \"gss-tsig\" or update_key, not both",
                    );
                }
                if !cfg!(feature = "gss-tsig") {
                    c.report(
                        a.span(),
                        format!("zone[{i}].update_auth"),
                        "this kmsdns was built without GSS-TSIG (the gss-tsig feature)",
                    );
                }
                true
            }
            Some(a) => {
                c.report(
                    a.span(),
                    format!("zone[{i}].update_auth"),
                    format!(
                        "'{}' is not an update method: the one is \"gss-tsig\" (for HMAC TSIG give update_key)",
                        a.get_ref()
                    ),
                );
                false
            }
            None => false,
        };
        let allow_unsigned = z.allow_unsigned.as_ref().map(|a| *a.get_ref()).unwrap_or(false);
        if let (Some(a), true) = (&z.allow_unsigned, update_key.is_some() && allow_unsigned) {
            c.report(
                a.span(),
                format!("zone[{i}].allow_unsigned"),
                "allow_unsigned has no effect with update_key: remove one",
            );
        }
        let policy = z.policy.as_ref().map(|p| *p.get_ref()).unwrap_or(Policy::Audit);
        if let (Some(p), Policy::Repair) = (&z.policy, policy)
            && z.update_key.is_none()
            && !gss_tsig
            && !allow_unsigned
        {
            c.report(
                p.span(),
                format!("zone[{i}].policy"),
                "policy = \"repair\" needs update_key (a TSIG key) or update_auth = \"gss-tsig\", or allow_unsigned = true for a server that takes unsigned updates",
            );
        }
        let max_deletes =
            c.int(&z.max_deletes, format!("zone[{i}].max_deletes"), 0..10_001, "max_deletes").unwrap_or(2);
        zones.push(Zone {
            name,
            servers,
            policy,
            primary,
            update_key,
            gss_tsig,
            allow_unsigned,
            remove_unknown: z.remove_unknown.unwrap_or(false),
            max_deletes,
        });
    }

    // Sets, not scans: a host may publish in every one of 10,000 zones.
    let mut hosts: Vec<KmsHost> = Vec::new();
    let mut seen_hosts = HashSet::new();
    for (i, h) in raw.host.iter().enumerate() {
        let Some(name) = c.name(&h.name, format!("host[{i}].name")) else { continue };
        if !seen_hosts.insert(name.clone()) {
            c.report(h.name.span(), format!("host[{i}].name"), format!("the host '{name}' is declared twice"));
        }
        let mut host_zones = Vec::new();
        let mut listed = HashSet::new();
        for (j, z) in h.zones.get_ref().iter().enumerate() {
            let key = format!("host[{i}].zones[{j}]");
            let Some(zn) = c.name(z, key.clone()) else { continue };
            if !seen_zones.contains(&zn) {
                c.report(
                    z.span(),
                    key,
                    format!("the zone '{zn}' is not declared: add a [[zone]] with name = \"{zn}\""),
                );
            } else if !listed.insert(zn.clone()) {
                c.report(z.span(), key, format!("the zone '{zn}' is listed twice"));
            } else {
                host_zones.push(zn);
            }
        }
        if h.zones.get_ref().is_empty() && h.state == HostState::Active {
            c.report(
                h.zones.span(),
                format!("host[{i}].zones"),
                "an active host must be published in at least one zone",
            );
        }
        let port = c.int(&h.port, format!("host[{i}].port"), 1..65_536, "a port").unwrap_or(defaults.port);
        let priority = c.int(&h.priority, format!("host[{i}].priority"), 0..65_536, "a priority").unwrap_or(0);
        let weight = c.int(&h.weight, format!("host[{i}].weight"), 0..65_536, "a weight").unwrap_or(0);
        let account = h.account.as_ref().and_then(|a| {
            let text = a.get_ref().trim();
            let valid = !text.is_empty()
                && text.len() <= 64
                && !text.contains(['"', '/', '\\', '[', ']', ':', ';', '|', '=', ',', '+', '*', '?', '<', '>', '@']);
            if !valid {
                c.report(
                    a.span(),
                    format!("host[{i}].account"),
                    format!("'{text}' is not a sAMAccountName such as \"KMS1$\""),
                );
            }
            valid.then(|| text.to_string())
        });
        hosts.push(KmsHost { name, zones: host_zones, state: h.state, port, priority, weight, account });
    }

    if c.problems.is_empty() {
        Ok(Inventory { defaults, zones, hosts, keys, state_dir, daemon, ad, instance })
    } else {
        Err(c.problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[defaults]
ttl = 600
timeout = "500ms"

[[zone]]
name = "Corp.Example.com."
servers = ["192.0.2.10", "dc2.corp.example.com:5353", "[2001:db8::1]:53"]

[[host]]
name = "kms1.corp.example.com"
zones = ["corp.example.com"]
state = "active"
priority = 10

[[host]]
name = "kms2.corp.example.com"
zones = []
state = "decommissioned"
port = 11688
"#;

    fn problems(text: &str) -> Vec<Problem> {
        Inventory::from_toml(text).expect_err("the inventory should be refused")
    }

    fn one_problem(text: &str) -> Problem {
        let p = problems(text);
        assert_eq!(p.len(), 1, "{p:?}");
        p.into_iter().next().unwrap()
    }

    #[test]
    fn a_good_inventory_is_read_with_defaults() {
        let inv = Inventory::from_toml(GOOD).unwrap();
        assert_eq!(inv.defaults.ttl, 600);
        assert_eq!(inv.defaults.timeout, Duration::from_millis(500));
        assert_eq!(inv.defaults.retries, 2);
        let z = &inv.zones[0];
        assert_eq!(z.name.as_str(), "corp.example.com");
        assert_eq!(z.policy, Policy::Audit);
        assert_eq!(z.servers[0].to_string(), "192.0.2.10:53");
        assert_eq!(z.servers[1].to_string(), "dc2.corp.example.com:5353");
        assert_eq!(z.servers[2].to_string(), "[2001:db8::1]:53");
        assert_eq!(inv.hosts[0].port, 1688);
        assert_eq!(inv.hosts[0].priority, 10);
        assert_eq!(inv.hosts[1].port, 11688);
        assert_eq!(inv.hosts[1].state, HostState::Decommissioned);
    }

    #[test]
    fn unknown_key_is_named_with_its_position() {
        let p = one_problem("[[zone]]\nname = \"a.test\"\nservers = [\"127.0.0.1\"]\nserver = \"x\"\n");
        assert_eq!((p.line, p.column), (4, 1));
        assert_eq!(p.key, "zone[0].server");
        assert!(p.message.contains("unknown field"), "{}", p.message);
    }

    #[test]
    fn wrong_type_is_named_with_its_position() {
        let text = "[[zone]]\nname = \"a.test\"\nservers = [\"127.0.0.1\"]\n[[host]]\nname = \"k.a.test\"\nzones = [\"a.test\"]\nstate = \"active\"\n[[host]]\nname = \"k2.a.test\"\nzones = [\"a.test\"]\nstate = \"active\"\nport = \"1688\"\n";
        let p = one_problem(text);
        assert_eq!(p.line, 12);
        assert_eq!(p.key, "host[1].port");
    }

    #[test]
    fn bad_enum_value_is_refused() {
        let p = one_problem("[[zone]]\nname = \"a.test\"\nservers = [\"127.0.0.1\"]\npolicy = \"fix\"\n");
        assert_eq!(p.line, 4);
        assert_eq!(p.key, "zone[0].policy");
    }

    #[test]
    fn undeclared_zone_duplicates_and_empty_servers_are_all_reported() {
        let text = r#"
[[zone]]
name = "a.test"
servers = []

[[zone]]
name = "A.test."
servers = ["127.0.0.1"]

[[host]]
name = "kms.a.test"
zones = ["b.test"]
state = "standby"

[[host]]
name = "KMS.a.test"
zones = ["a.test"]
state = "standby"
"#;
        let p = problems(text);
        let keys: Vec<_> = p.iter().map(|p| (p.line, p.key.as_str())).collect();
        assert_eq!(
            keys,
            vec![(4, "zone[0].servers"), (7, "zone[1].name"), (12, "host[0].zones[0]"), (16, "host[1].name")],
            "{p:#?}"
        );
        assert!(p[2].message.contains("'b.test' is not declared"));
        assert!(p[3].message.contains("declared twice"));
    }

    #[test]
    fn invalid_names_ports_and_servers_are_refused() {
        let text = r#"
[defaults]
port = 70000
timeout = "soon"

[[zone]]
name = "bad..zone"
servers = ["127.0.0.1:0"]

[[zone]]
name = "ok.test"
servers = ["127.0.0.1", "127.0.0.1:53"]

[[host]]
name = "kms_1 .ok.test"
zones = ["ok.test"]
state = "active"

[[host]]
name = "kms2.ok.test"
zones = ["ok.test"]
state = "active"
priority = -1
"#;
        let p = problems(text);
        let keys: Vec<_> = p.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "defaults.port",
                "defaults.timeout",
                "zone[0].name",
                "zone[1].servers[1]",
                "host[0].name",
                "host[1].priority"
            ],
            "{p:#?}"
        );
    }

    #[test]
    fn an_active_host_needs_a_zone() {
        let p = one_problem(
            "[[zone]]\nname = \"a.test\"\nservers = [\"127.0.0.1\"]\n[[host]]\nname = \"k.a.test\"\nzones = []\nstate = \"active\"\n",
        );
        assert_eq!(p.key, "host[0].zones");
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let p = one_problem("[[zone]]\nname = \"a.test\nservers = []\n");
        assert_eq!(p.line, 2);
    }

    #[test]
    fn error_display_names_file_line_column_and_key() {
        let e =
            ConfigError { path: "/etc/kmsdns/kmsdns.toml".into(), problems: problems("[defaults]\nretries = 99\n") };
        assert_eq!(
            e.to_string(),
            "/etc/kmsdns/kmsdns.toml:2:11: defaults.retries: 99 is out of range: retries must be 0 to 10"
        );
    }

    #[test]
    fn zone_containing_prefers_the_deepest_zone() {
        let inv = Inventory::from_toml(
            "[[zone]]\nname = \"test\"\nservers = [\"127.0.0.1\"]\n[[zone]]\nname = \"a.test\"\nservers = [\"127.0.0.1\"]\n",
        )
        .unwrap();
        let n = DnsName::parse("kms.a.test").unwrap();
        assert_eq!(inv.zone_containing(&n).unwrap().name.as_str(), "a.test");
        assert!(inv.zone_containing(&DnsName::parse("x.example").unwrap()).is_none());
    }

    /// `n` zones and 3 active hosts, each publishing in every zone: the shape of an MSP estate.
    fn estate_of(n: usize) -> String {
        let mut t = String::new();
        for i in 0..n {
            t.push_str(&format!("[[zone]]\nname = \"zone{i}.test\"\nservers = [\"127.0.0.1\", \"127.0.0.2\"]\n"));
        }
        let zones: Vec<String> = (0..n).map(|i| format!("\"zone{i}.test\"")).collect();
        for k in 1..=3 {
            t.push_str(&format!(
                "[[host]]\nname = \"kms{k}.test\"\nzones = [{}]\nstate = \"active\"\n",
                zones.join(", ")
            ));
        }
        t
    }

    #[test]
    fn loading_is_linear_in_the_zones() {
        // Counted name comparisons, not time: four times the zones may cost four times the work
        // (a scan per zone, 16 times, was issue 13's 1.96 s audit of 10,000 zones).
        let work = |n: usize| {
            let text = estate_of(n);
            let (inv, made) = crate::name::comparisons::made_by(|| Inventory::from_toml(&text));
            assert_eq!(inv.expect("the estate is valid").hosts[2].zones.len(), n);
            made
        };
        let (small, large) = (work(500), work(2000));
        assert!(large <= 4 * small + 500, "500 zones: {small} comparisons, 2000 zones: {large}");
        assert!(large <= 20 * 2000, "2000 zones took {large} name comparisons");
    }

    proptest::proptest! {
        #[test]
        fn no_input_makes_the_parser_panic(s in "\\PC{0,200}") {
            let _ = Inventory::from_toml(&s);
        }

        #[test]
        fn mangled_good_inventories_never_panic(cut in 0usize..400, junk in "[\\[\\]=\"a-z0-9 .\n]{0,20}") {
            let mut t = GOOD.to_string();
            let at = cut.min(t.len());
            t.insert_str(at, &junk);
            let _ = Inventory::from_toml(&t);
        }
    }
}
