//! Raw TOML → a valid [`Inventory`], every problem collected with its position.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::*;
use crate::name::DnsName;

use super::raw::*;

/// Collects problems while a raw inventory is turned into a valid one.
pub(super) struct Checker<'a> {
    text: &'a str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn report(&mut self, span: Range<usize>, key: String, message: impl Into<String>) {
        self.problems.push(Problem::at(self.text, span.start, key, message.into()));
    }

    // Each check takes its key as a closure: it is written out only for a problem, and an
    // inventory of 10,000 zones and 3 hosts made 50,000 of them for nothing.
    fn name(&mut self, value: &Spanned<String>, key: impl FnOnce() -> String) -> Option<DnsName> {
        self.name_by(DnsName::parse, value, key)
    }

    /// A zone's name: its `_vlmcs._tcp` record must be nameable too.
    fn zone_name(&mut self, value: &Spanned<String>, key: impl FnOnce() -> String) -> Option<DnsName> {
        self.name_by(DnsName::parse_domain, value, key)
    }

    fn name_by(
        &mut self,
        parse: fn(&str) -> Result<DnsName, crate::name::NameError>,
        value: &Spanned<String>,
        key: impl FnOnce() -> String,
    ) -> Option<DnsName> {
        match parse(value.get_ref()) {
            Ok(n) => Some(n),
            Err(e) => {
                self.report(value.span(), key(), format!("'{}' is not a valid DNS name: {e}", value.get_ref()));
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
        key: impl FnOnce() -> String,
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
                key(),
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

pub(super) fn validate_ad(c: &mut Checker, a: &RawAd) -> AdSettings {
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

pub(super) fn validate(text: &str, raw: RawInventory) -> Result<Inventory, Vec<Problem>> {
    let mut c = Checker { text, problems: Vec::new() };
    let mut defaults = Defaults::default();
    let d = &raw.defaults;
    if let Some(v) = c.int(&d.ttl, || "defaults.ttl".into(), 1..2_147_483_648, "a TTL") {
        defaults.ttl = v;
    }
    if let Some(v) = c.int(&d.port, || "defaults.port".into(), 1..65_536, "a port") {
        defaults.port = v;
    }
    if let Some(v) = c.int(&d.retries, || "defaults.retries".into(), 0..11, "retries") {
        defaults.retries = v;
    }
    if let Some(v) = c.int(&d.concurrency, || "defaults.concurrency".into(), 1..4097, "concurrency") {
        defaults.concurrency = v;
    }
    let ms = Duration::from_millis;
    if let Some(v) = c.duration(&d.timeout, "defaults.timeout", ms(10)..ms(300_001)) {
        defaults.timeout = v;
    }
    if let Some(v) = c.duration(&d.propagation_timeout, "defaults.propagation_timeout", ms(0)..ms(3_600_001)) {
        defaults.propagation_timeout = v;
    }
    if let Some(v) = c.int(&d.confirm_probes, || "defaults.confirm_probes".into(), 1..101, "a probe count") {
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
    if let Some(v) = c.int(&r.fail_after, || "daemon.fail_after".into(), 1..1001, "fail_after") {
        daemon.fail_after = v;
    }
    if let Some(v) = c.int(&r.recover_after, || "daemon.recover_after".into(), 1..1001, "recover_after") {
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
        let Some(name) = c.name(&k.name, || format!("key[{i}].name")) else { continue };
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
        let Some(name) = c.zone_name(&z.name, || format!("zone[{i}].name")) else { continue };
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
            let key = c.name(k, || format!("zone[{i}].update_key"))?;
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
            c.int(&z.max_deletes, || format!("zone[{i}].max_deletes"), 0..10_001, "max_deletes").unwrap_or(2);
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
        let Some(name) = c.name(&h.name, || format!("host[{i}].name")) else { continue };
        if !seen_hosts.insert(name.clone()) {
            c.report(h.name.span(), format!("host[{i}].name"), format!("the host '{name}' is declared twice"));
        }
        let mut host_zones = Vec::new();
        let mut listed = HashSet::new();
        for (j, z) in h.zones.get_ref().iter().enumerate() {
            let key = || format!("host[{i}].zones[{j}]");
            let Some(zn) = c.name(z, key) else { continue };
            if !seen_zones.contains(&zn) {
                c.report(
                    z.span(),
                    key(),
                    format!("the zone '{zn}' is not declared: add a [[zone]] with name = \"{zn}\""),
                );
            } else if !listed.insert(zn.clone()) {
                c.report(z.span(), key(), format!("the zone '{zn}' is listed twice"));
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
        let port = c.int(&h.port, || format!("host[{i}].port"), 1..65_536, "a port").unwrap_or(defaults.port);
        let priority = c.int(&h.priority, || format!("host[{i}].priority"), 0..65_536, "a priority").unwrap_or(0);
        let weight = c.int(&h.weight, || format!("host[{i}].weight"), 0..65_536, "a weight").unwrap_or(0);
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
        Ok(Inventory { defaults, zones, hosts, keys, state_dir, daemon, ad, instance, zone_index: Default::default() })
    } else {
        Err(c.problems)
    }
}
