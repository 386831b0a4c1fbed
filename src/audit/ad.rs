//! The Active Directory half of the audit: what only the directory shows. Pure, like the rest
//! of the audit; "now" comes from the observation.
//!
//! The headline problem (kms-dns-ad.md §2): the first KMS host that publishes `_vlmcs._tcp`
//! creates its dnsNode and owns it, everyone else may only read it, so every other KMS host's
//! update is refused (event 12293) while DNS shows nothing wrong.
//!
//! What could not be read is a finding of its own (`ad-unreadable`, `update-acl-unknown`) and
//! withholds exactly the verdicts that needed it: undecodable zone settings are no "updates
//! off", an unreadable token is no "blocked", an ACE that cannot be evaluated is neither allow
//! nor deny, and a node with undecodable records is not compared with DNS.

use std::time::SystemTime;

use super::access::{Verdict, computer_token, may_update};
use super::{Code, Finding, Severity};
use crate::inventory::{HostState, Inventory, Policy};
use crate::model::SrvRecord;
use crate::model::ad::{AccountError, AdNode, AdRead, AdView, AdZone, ZoneProperties};
use crate::name::DnsName;
use crate::wire::dnsp::{AllowUpdate, DnsRecord, RecordData, ZoneSettings, hours_since_1601};
use crate::wire::security::Sid;

/// KMS hosts re-register `_vlmcs._tcp` every 24 hours (kms-dns-ad.md §1.2).
const KMS_REFRESH_HOURS: u32 = 24;

/// Findings from the directory for every zone of the inventory.
pub fn audit_ad(inv: &Inventory, ad: &AdRead, dns: &[crate::model::ZoneView], now: Option<SystemTime>) -> Vec<Finding> {
    let view = match ad {
        AdRead::Read(v) => v,
        AdRead::Failed { error } => {
            return inv
                .zones
                .iter()
                .map(|z| finding(Code::AdUnreachable, &z.name, None, None,
                    format!("the directory could not be read ({error}); the ACL, aging and static-record checks of {} are withheld", z.name),
                    "check [ad] urls, bind_dn, password_file and ca_file, and that the DC answers LDAP(S) from this host".into()))
                .collect();
        }
    };
    let mut out = Vec::new();
    for z in &view.zones {
        let Some(zone) = inv.zone(&z.zone) else { continue };
        let Some(zone_dn) = &z.dn else { continue };
        let settings = match known_settings(&z.settings) {
            Ok(s) => Some(s),
            Err(why) => {
                out.push(finding(
                    Code::AdUnreadable,
                    &z.zone,
                    None,
                    None,
                    format!(
                        "the settings of {} ({zone_dn}) are unknown: {why}; so zone-updates-disabled, zone-secure-only, the ACL check (update-blocked-acl) and the aging check are withheld",
                        z.zone
                    ),
                    match z.settings {
                        ZoneProperties::Missing => "give the [ad] bind_dn read access to the dnsZone's dNSProperty attribute (every zone AD stores has it), then audit again".into(),
                        ZoneProperties::Values(_) => format!("look at the zone's settings on a DC (`samba-tool dns zoneinfo <dc> {0}`, `dnscmd /zoneinfo {0}`) and set them again (dynamic updates, aging), which rewrites the broken value", z.zone),
                    },
                ));
                None
            }
        };
        match settings.map(|s| s.allow_update) {
            None => {}
            Some(AllowUpdate::SecureOnly) => out.push(finding(
                Code::ZoneSecureOnly,
                &z.zone,
                None,
                None,
                format!("{} takes only secure (GSS-TSIG, Kerberos) updates: HMAC-TSIG and unsigned updates are refused, and each update is checked against the node's ACL", z.zone),
                "repair this zone with GSS-TSIG (update_auth = \"gss-tsig\"); make sure every KMS host may write the _vlmcs._tcp node".into(),
            )),
            Some(AllowUpdate::None) => {
                let mut f = finding(
                    Code::ZoneUpdatesDisabled,
                    &z.zone,
                    None,
                    None,
                    format!("dynamic updates are off in {}: KMS hosts cannot publish, and kmsdns cannot repair it", z.zone),
                    "turn on secure dynamic updates for the zone (DNS Manager, zone properties, Dynamic updates: Secure only)".into(),
                );
                f.severity = if zone.policy == Policy::Repair { Severity::Critical } else { Severity::Info };
                out.push(f);
            }
            Some(AllowUpdate::NonsecureAndSecure | AllowUpdate::Unknown(_)) => {}
        }
        let Some(node) = &z.node else { continue };
        // Only secure updates are checked against the node's ACL; a zone that takes unsigned
        // updates ignores it (Samba's "nonsecure" skips the check entirely).
        if settings.is_some_and(|s| s.allow_update == AllowUpdate::SecureOnly) {
            acl_findings(inv, view, z, node, &mut out);
        }
        record_findings(z, settings, node, now, &mut out);
        if node.unreadable_values > 0 {
            out.push(finding(
                Code::AdUnreadable,
                &z.zone,
                None,
                None,
                format!(
                    "{} dnsRecord value(s) of {} could not be decoded: the directory's copy of _vlmcs._tcp.{} is known only in part, so it is not compared with DNS (ad-dns-divergence is withheld); the records that could be decoded are judged one by one",
                    node.unreadable_values, node.dn, z.zone
                ),
                format!(
                    "look at the node's records on a DC (`samba-tool dns query <dc> {} _vlmcs._tcp ALL`, DNS Manager): a value no reader decodes was written by a broken tool; delete that record and let its host register again",
                    z.zone
                ),
            ));
        } else {
            divergence(z, node, dns, &mut out);
        }
    }
    out
}

/// The zone's settings when every `dNSProperty` value was read and decoded, else why not.
/// A value that could not be decoded may be the very one that sets dynamic updates or aging,
/// and the defaults ("updates off", aging off) are no reading of the zone.
fn known_settings(p: &ZoneProperties) -> Result<&ZoneSettings, String> {
    match p {
        ZoneProperties::Values(s) if s.skipped == 0 => Ok(s),
        ZoneProperties::Values(s) => Err(format!("{} dNSProperty value(s) could not be decoded", s.skipped)),
        ZoneProperties::Missing => {
            Err("the directory returned no dNSProperty for it (the bind account may not read the attribute)".into())
        }
    }
}

fn finding(
    code: Code,
    zone: &DnsName,
    record: Option<SrvRecord>,
    target: Option<DnsName>,
    message: String,
    fix: String,
) -> Finding {
    Finding {
        code,
        severity: code.severity(),
        zone: zone.clone(),
        server: None,
        target: target.or_else(|| record.as_ref().map(|r| r.target.clone())),
        record,
        message,
        fix,
    }
}

/// The SRV records of a node (tombstones and other types left out).
pub fn srv_records(node: &AdNode) -> Vec<SrvRecord> {
    node.records.iter().filter_map(srv_of).collect()
}

fn srv_of(r: &DnsRecord) -> Option<SrvRecord> {
    match &r.data {
        RecordData::Srv { priority, weight, port, target } => Some(SrvRecord {
            target: DnsName::parse(target).ok()?,
            port: *port,
            priority: *priority,
            weight: *weight,
            ttl: r.ttl,
        }),
        _ => None,
    }
}

/// An account that may write the node (all Windows DNS and Samba's internal DNS check) but
/// lacks what Samba's BIND9_DLZ module also checks: behind BIND its updates are REFUSED. Which
/// backend answers cannot be told from here, so this is said as what it is, with the fix that
/// serves both. An undecidable DLZ check says nothing: the write check already passed.
fn blocked_behind_dlz(
    host: &crate::inventory::KmsHost,
    account: &str,
    z: &AdZone,
    node: &AdNode,
    sd: &crate::wire::security::SecurityDescriptor,
    token: &[Sid],
    fix: &str,
) -> Option<Finding> {
    let d = crate::audit::access::may_update_through_dlz(sd, token);
    if !matches!(d.verdict, Verdict::Denied | Verdict::NotGranted) {
        return None;
    }
    Some(finding(
        Code::UpdateBlockedAcl,
        &z.zone,
        None,
        Some(host.name.clone()),
        format!(
            "{} ({account}) may write the records of _vlmcs._tcp.{}, which is all Windows DNS and Samba's internal DNS ask, but lacks DELETE, READ_CONTROL, WRITE_DAC, WRITE_OWNER and validated write on {}, which Samba's BIND9_DLZ module also asks: where BIND serves the zone, its updates are REFUSED ({d})",
            host.name, z.zone, node.dn
        ),
        fix.to_string(),
    ))
}

fn acl_findings(inv: &Inventory, view: &AdView, z: &AdZone, node: &AdNode, out: &mut Vec<Finding>) {
    let Some(sd) = &node.sd else {
        out.push(finding(
            Code::AdUnreachable,
            &z.zone,
            None,
            None,
            format!("the security descriptor of {} could not be read, so the ACL check is withheld", node.dn),
            "give the [ad] bind_dn read access to nTSecurityDescriptor (owner, group and DACL)".into(),
        ));
        return;
    };
    let owner = sd.owner.as_ref().map(|o| name_of(view, o)).unwrap_or_else(|| "nobody".into());
    let group = inv.ad.as_ref().and_then(|a| a.kms_group.clone());
    let fix = match &group {
        Some(g) => format!(
            "`kmsdns repair --acl --apply` grants the group '{g}' write access to the node (Microsoft's fix); every KMS host's account must be a member of it, and the host needs a new Kerberos ticket after joining (restart it, or `klist -li 0x3e7 purge`)"
        ),
        None => "set [ad] kms_group to a group of all KMS hosts and run `kmsdns repair --acl --apply` (Microsoft's fix: grant that group write access to the node)".into(),
    };
    let mut any_blocked = false;
    for host in inv.hosts.iter().filter(|h| h.state == HostState::Active && h.zones.contains(&z.zone)) {
        let Some(account) = &host.account else { continue };
        let acct = match view.accounts.get(account) {
            Some(Ok(acct)) => acct,
            unknown => {
                let (why, fix) = account_unknown(account, unknown.and_then(|a| a.as_ref().err()));
                out.push(finding(
                    Code::AdUnreadable,
                    &z.zone,
                    None,
                    Some(host.name.clone()),
                    format!("{why}: without the account's token, the ACL check of {} is withheld", host.name),
                    fix,
                ));
                continue;
            }
        };
        let token = computer_token(acct.sid, &acct.groups, false);
        let decision = may_update(sd, &token);
        match decision.verdict {
            Verdict::Granted | Verdict::NoDacl => {
                if let Some(f) = blocked_behind_dlz(host, account, z, node, sd, &token, &fix) {
                    any_blocked = true;
                    out.push(f);
                }
                continue;
            }
            Verdict::Denied | Verdict::NotGranted => {}
            Verdict::Unknown => {
                out.push(finding(
                    Code::UpdateAclUnknown,
                    &z.zone,
                    None,
                    Some(host.name.clone()),
                    format!(
                        "whether {} ({account}) may update _vlmcs._tcp.{} cannot be told from the DACL of {}: {decision}; it is neither called blocked nor able to update",
                        host.name, z.zone, node.dn
                    ),
                    format!(
                        "read the node's DACL (`samba-tool dsacl get --objectdn='{0}'`, or `dsacls \"{0}\"` on Windows) and look at the ACEs named, whose conditions kmsdns does not evaluate: if {account} must update the record, give it (or the KMS group) an unconditional grant ahead of any conditional deny, or remove the conditional ACE; then audit again",
                        node.dn
                    ),
                ));
                continue;
            }
        }
        any_blocked = true;
        let aces: Vec<String> = decision.aces.iter().map(|a| a.sddl.clone()).collect();
        let applies = if aces.is_empty() {
            "no ACE grants it anything".to_string()
        } else {
            format!("the ACEs that apply to it grant no write: {}", aces.join(""))
        };
        let unevaluated = decision.harmless_unevaluated();
        out.push(finding(
            Code::UpdateBlockedAcl,
            &z.zone,
            None,
            Some(host.name.clone()),
            format!(
                "{} ({account}) cannot update _vlmcs._tcp.{}: the node is owned by {owner}, and {applies}; its registrations are refused (event 12293){unevaluated}",
                host.name, z.zone
            ),
            fix.clone(),
        ));
    }
    if node.tombstoned && any_blocked {
        out.push(finding(
            Code::TombstonedOwner,
            &z.zone,
            None,
            None,
            format!(
                "_vlmcs._tcp.{} is tombstoned (DNS answers NXDOMAIN), yet its node is still owned by {owner}: the next KMS host that publishes will be refused",
                z.zone
            ),
            fix,
        ));
    }
}

/// Why a host's account is not known, and what to do about it.
fn account_unknown(account: &str, error: Option<&AccountError>) -> (String, String) {
    let Some(error) = error else {
        return (
            format!("{account} was not looked up in the directory"),
            "run the audit again; if this stays, report it".into(),
        );
    };
    let fix = match error {
        AccountError::NotFound { .. } => format!(
            "check the host's `account` in the inventory: it must be the sAMAccountName of its computer account, `{account}` with the trailing $"
        ),
        AccountError::NoObjectSid { .. } | AccountError::TokenGroupsUnreadable { .. } => format!(
            "give the [ad] bind_dn read access to objectSid and tokenGroups of {account} (members of \"Windows Authorization Access Group\" may read tokenGroups; so may \"Pre-Windows 2000 Compatible Access\")"
        ),
        AccountError::Search { .. } => "check that the DC answers the search; run the audit again".into(),
    };
    (error.to_string(), fix)
}

/// A SID named as the directory knows it: an inventory account or the KMS group, else the SID.
fn name_of(view: &AdView, sid: &Sid) -> String {
    for (name, acct) in &view.accounts {
        if let Ok(a) = acct
            && &a.sid == sid
        {
            return format!("{name} ({sid})");
        }
    }
    sid.to_string()
}

/// `static-record` and `aging-stale`, record by record. Each judges one value on its own, so
/// the values that could be decoded are judged even when others could not; ages are judged
/// only with the zone's aging settings and a clock reading.
fn record_findings(
    z: &AdZone,
    settings: Option<&ZoneSettings>,
    node: &AdNode,
    now: Option<SystemTime>,
    out: &mut Vec<Finding>,
) {
    if node.tombstoned {
        return;
    }
    let now_hours = now.map(hours_since_1601);
    let aging = settings.filter(|s| s.aging).map(|s| s.no_refresh_hours.saturating_add(s.refresh_hours));
    for r in &node.records {
        let Some(srv) = srv_of(r) else { continue };
        if r.is_static() {
            out.push(finding(
                Code::StaticRecord,
                &z.zone,
                Some(srv.clone()),
                None,
                format!("{srv} is static (timestamp 0): created by hand, it is never scavenged, and stays after its host is gone"),
                "if the host registers itself, delete the static record and let it re-register (its record then ages); if you publish it by hand, keep it in the inventory".into(),
            ));
        } else if let Some(age) = now_hours.map(|n| n.saturating_sub(r.timestamp))
            && let Some(limit) = aging
            && age > limit
        {
            out.push(finding(
                Code::AgingStale,
                &z.zone,
                Some(srv.clone()),
                None,
                format!(
                    "{srv} was last refreshed {age} hours ago, more than the zone's no-refresh plus refresh ({limit} h): its host stopped re-registering (KMS hosts do every {KMS_REFRESH_HOURS} h)"
                ),
                "check the host: the KMS service may be stopped or it may have stopped publishing (`slmgr /cdns`); scavenging will remove the record".into(),
            ));
        }
    }
}

fn divergence(z: &AdZone, node: &AdNode, dns: &[crate::model::ZoneView], out: &mut Vec<Finding>) {
    let in_ad: Vec<SrvRecord> = if node.tombstoned { vec![] } else { srv_records(node) };
    let Some(view) = dns.iter().find(|v| v.zone == z.zone) else { return };
    let differing: Vec<String> = view
        .servers
        .iter()
        .filter_map(|s| {
            let served = s.srv.known_records()?;
            (!crate::model::same_rrset(served, &in_ad)).then(|| {
                let targets: Vec<String> = served.iter().map(|r| r.target.to_string()).collect();
                format!("{} serves [{}]", s.server, targets.join(", "))
            })
        })
        .collect();
    if differing.is_empty() {
        return;
    }
    let stored: Vec<String> = in_ad.iter().map(|r| r.target.to_string()).collect();
    out.push(finding(
        Code::AdDnsDivergence,
        &z.zone,
        None,
        None,
        format!("the directory holds [{}] for _vlmcs._tcp.{}, but {}", stored.join(", "), z.zone, differing.join("; ")),
        "a DC serving from a stale copy: check AD replication (`repadmin /showrepl`, `samba-tool drs showrepl`); Windows DNS also polls the directory, so wait one polling interval".into(),
    ));
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::{Duration, UNIX_EPOCH};

    use base64::Engine;

    use super::*;
    use crate::model::ad::{AdAccount, AdGroup};
    use crate::model::{ServerView, SrvAnswer, ZoneView};
    use crate::wire::dnsp::from_hours_since_1601;
    use crate::wire::security::SecurityDescriptor;

    const DOMAIN: &str = "S-1-5-21-2485094039-1089347830-3773317622";

    fn sd(b64: &str) -> SecurityDescriptor {
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64.trim()).unwrap();
        SecurityDescriptor::parse(&bytes).unwrap()
    }

    fn before() -> SecurityDescriptor {
        sd(include_str!("../../tests/fixtures/ad/sd_vlmcs_before_fix.b64"))
    }

    fn after() -> SecurityDescriptor {
        sd(include_str!("../../tests/fixtures/ad/sd_vlmcs_after_fix.b64"))
    }

    fn sid(rid: u32) -> Sid {
        format!("{DOMAIN}-{rid}").parse().unwrap()
    }

    fn inventory(policy: &str) -> Inventory {
        Inventory::from_toml(&format!(
            r#"
[ad]
urls = ["ldaps://dc1.corp.test"]
bind_dn = "kmsdns@corp.test"
password_file = "/etc/kmsdns/ad.pass"
kms_group = "KMS-Hosts"

[[zone]]
name = "corp.test"
servers = ["127.0.0.10"]
policy = "{policy}"
allow_unsigned = true

[[host]]
name = "kms1.corp.test"
zones = ["corp.test"]
state = "active"
account = "KMS1$"

[[host]]
name = "kms2.corp.test"
zones = ["corp.test"]
state = "active"
account = "KMS2$"
"#
        ))
        .unwrap()
    }

    fn settings(allow: AllowUpdate, aging: bool) -> ZoneSettings {
        let mut s = ZoneSettings::from_values(std::iter::empty());
        s.allow_update = allow;
        s.aging = aging;
        s
    }

    fn srv(target: &str, timestamp: u32) -> DnsRecord {
        DnsRecord::srv(0, 0, 1688, target, 3600, 110, timestamp)
    }

    /// A directory where KMS1$ (-1103) created the node and KMS2$ (-1104) has no rights.
    fn view(sd: SecurityDescriptor, records: Vec<DnsRecord>, tombstoned: bool, allow: AllowUpdate) -> AdRead {
        let mut accounts = BTreeMap::new();
        let account = |rid| Ok(AdAccount { dn: format!("CN={rid}"), sid: sid(rid), groups: vec![sid(515)] });
        accounts.insert("KMS1$".to_string(), account(1103));
        accounts.insert("KMS2$".to_string(), account(1104));
        AdRead::Read(AdView {
            dc: "ldaps://dc1.corp.test".into(),
            zones: vec![AdZone {
                zone: DnsName::parse("corp.test").unwrap(),
                dn: Some("DC=corp.test,CN=MicrosoftDNS,DC=DomainDnsZones,DC=corp,DC=test".into()),
                settings: ZoneProperties::Values(settings(allow, true)),
                node: Some(AdNode {
                    dn: "DC=_vlmcs._tcp,DC=corp.test,CN=MicrosoftDNS,DC=DomainDnsZones,DC=corp,DC=test".into(),
                    records,
                    unreadable_values: 0,
                    tombstoned,
                    when_changed: None,
                    sd_bytes: sd.to_bytes().unwrap(),
                    sd: Some(sd),
                }),
            }],
            accounts,
            kms_group: Some(Ok(AdGroup { dn: "CN=KMS-Hosts".into(), sid: sid(1106) })),
        })
    }

    fn dns(targets: &[&str]) -> Vec<ZoneView> {
        let records = targets
            .iter()
            .map(|t| SrvRecord { target: DnsName::parse(t).unwrap(), port: 1688, priority: 0, weight: 0, ttl: 3600 })
            .collect();
        vec![ZoneView {
            zone: DnsName::parse("corp.test").unwrap(),
            servers: vec![ServerView {
                server: crate::inventory::ServerAddr::parse("127.0.0.10").unwrap(),
                srv: SrvAnswer::Records { records },
                serial: Ok(1),
                mname: None,
            }],
        }]
    }

    /// 2026-11-28T16:00Z: an hour after the sample's dynamic record was written.
    fn now() -> Option<SystemTime> {
        from_hours_since_1601(3_733_432)
    }

    fn codes(findings: &[Finding]) -> Vec<(&'static str, Option<String>)> {
        findings.iter().map(|f| (f.code.as_str(), f.target.as_ref().map(|t| t.to_string()))).collect()
    }

    #[test]
    fn the_second_kms_host_is_blocked_by_the_first_ones_node() {
        let ad = view(before(), vec![srv("kms1.corp.test", 3_733_431)], false, AllowUpdate::SecureOnly);
        let f = audit_ad(&inventory("audit"), &ad, &dns(&["kms1.corp.test"]), now());
        assert_eq!(
            codes(&f),
            vec![("zone-secure-only", None), ("update-blocked-acl", Some("kms2.corp.test".into()))],
            "{f:#?}"
        );
        let blocked = &f[1];
        assert_eq!(blocked.severity, Severity::Critical);
        assert!(blocked.message.contains(&format!("owned by KMS1$ ({DOMAIN}-1103)")), "{}", blocked.message);
        assert!(blocked.message.contains("(A;;RPLCLORC;;;WD)"), "{}", blocked.message);
        assert!(blocked.message.contains("event 12293"), "{}", blocked.message);
        assert!(
            blocked.fix.contains("kmsdns repair --acl --apply") && blocked.fix.contains("KMS-Hosts"),
            "{}",
            blocked.fix
        );
    }

    #[test]
    fn after_the_fix_a_member_of_the_group_may_update() {
        // After the fix, KMS2$ has a direct ACE; a KMS-Hosts member is covered by the group ACE.
        let mut ad = view(after(), vec![srv("kms1.corp.test", 3_733_431)], false, AllowUpdate::SecureOnly);
        if let AdRead::Read(v) = &mut ad {
            v.accounts
                .insert("KMS2$".into(), Ok(AdAccount { dn: "x".into(), sid: sid(1199), groups: vec![sid(1106)] }));
        }
        let f = audit_ad(&inventory("audit"), &ad, &dns(&["kms1.corp.test"]), now());
        assert_eq!(codes(&f), vec![("zone-secure-only", None)], "{f:#?}");
    }

    #[test]
    fn a_tombstoned_node_still_owned_by_the_first_host_is_a_trap() {
        let ad = view(before(), vec![], true, AllowUpdate::SecureOnly);
        let f = audit_ad(&inventory("audit"), &ad, &dns(&[]), now());
        let c = codes(&f);
        assert!(c.contains(&("tombstoned-owner", None)), "{c:?}");
        assert!(c.contains(&("update-blocked-acl", Some("kms2.corp.test".into()))), "{c:?}");
        assert!(!c.iter().any(|(code, _)| *code == "ad-dns-divergence"), "NXDOMAIN matches a tombstone: {c:?}");
    }

    #[test]
    fn static_and_unrefreshed_records_are_reported() {
        let old = 3_733_432 - 400;
        let ad =
            view(after(), vec![srv("kms1.corp.test", 0), srv("kms2.corp.test", old)], false, AllowUpdate::SecureOnly);
        let f = audit_ad(&inventory("audit"), &ad, &dns(&["kms1.corp.test", "kms2.corp.test"]), now());
        let c = codes(&f);
        assert!(c.contains(&("static-record", Some("kms1.corp.test".into()))), "{c:?}");
        assert!(c.contains(&("aging-stale", Some("kms2.corp.test".into()))), "{c:?}");
        // Without a clock, no age is judged.
        let f = audit_ad(&inventory("audit"), &ad, &dns(&["kms1.corp.test", "kms2.corp.test"]), None);
        assert!(!codes(&f).iter().any(|(c, _)| *c == "aging-stale"));
        let _ = UNIX_EPOCH + Duration::from_secs(1);
    }

    #[test]
    fn updates_off_is_critical_only_when_a_repair_is_asked_for() {
        let ad = view(after(), vec![srv("kms1.corp.test", 3_733_431)], false, AllowUpdate::None);
        let f = audit_ad(&inventory("repair"), &ad, &dns(&["kms1.corp.test"]), now());
        assert_eq!(f[0].code, Code::ZoneUpdatesDisabled);
        assert_eq!(f[0].severity, Severity::Critical);
        let f = audit_ad(&inventory("audit"), &ad, &dns(&["kms1.corp.test"]), now());
        assert_eq!(f[0].severity, Severity::Info);
    }

    #[test]
    fn the_directory_and_dns_disagreeing_is_reported() {
        let ad = view(after(), vec![srv("kms1.corp.test", 3_733_431)], false, AllowUpdate::SecureOnly);
        let f = audit_ad(&inventory("audit"), &ad, &dns(&["kms1.corp.test", "kms9.corp.test"]), now());
        let d = f.iter().find(|f| f.code == Code::AdDnsDivergence).expect("divergence");
        assert!(d.message.contains("the directory holds [kms1.corp.test]"), "{}", d.message);
    }

    /// A callback ACE (MS-DTYP 2.4.4.6/2.4.4.7): Mask, Sid, then a condition kmsdns cannot
    /// evaluate.
    fn callback_ace(ace_type: u8, rid: u32) -> crate::wire::security::Ace {
        let mut body = crate::wire::security::rights::WRITE_PROPERTY.to_le_bytes().to_vec();
        body.extend_from_slice(&sid(rid).to_bytes());
        body.extend_from_slice(b"artx\x00\x00\x00\x00");
        crate::wire::security::Ace::Other(crate::wire::security::OpaqueAce { ace_type, flags: 0, body })
    }

    fn with_node(mut ad: AdRead, edit: impl FnOnce(&mut AdZone)) -> AdRead {
        if let AdRead::Read(v) = &mut ad {
            edit(&mut v.zones[0]);
        }
        ad
    }

    #[test]
    fn an_ace_that_cannot_be_evaluated_makes_the_verdict_unknown_not_allowed_nor_blocked() {
        // A conditional deny for KMS1$ in front of the ACE that lets it write, and a
        // conditional allow for KMS2$, which otherwise may not write.
        let sd = before().with_ace_prepended(callback_ace(0x0a, 1103)).unwrap();
        let sd = sd.with_ace_prepended(callback_ace(0x09, 1104)).unwrap();
        let ad = view(sd, vec![srv("kms1.corp.test", 3_733_431)], false, AllowUpdate::SecureOnly);
        let f = audit_ad(&inventory("audit"), &ad, &dns(&["kms1.corp.test"]), now());
        assert_eq!(
            codes(&f),
            vec![
                ("zone-secure-only", None),
                ("update-acl-unknown", Some("kms1.corp.test".into())),
                ("update-acl-unknown", Some("kms2.corp.test".into())),
            ],
            "{f:#?}"
        );
        let kms1 = &f[1];
        assert_eq!(kms1.severity, Severity::Warning);
        assert!(
            kms1.message.contains("KMS1$") && kms1.message.contains("DC=_vlmcs._tcp,DC=corp.test"),
            "{}",
            kms1.message
        );
        assert!(kms1.message.contains("ACE 1 (0x0a;;"), "names the ACE: {}", kms1.message);
        assert!(kms1.message.contains("may deny"), "{}", kms1.message);
        assert!(f[2].message.contains("ACE 0 (0x09;;") && f[2].message.contains("may allow"), "{}", f[2].message);
        assert!(kms1.fix.contains("samba-tool dsacl get") || kms1.fix.contains("dsacls"), "{}", kms1.fix);
    }

    #[test]
    fn an_ace_that_cannot_change_the_verdict_is_still_named() {
        // KMS2$ may not write either way: a conditional deny for it changes nothing.
        let sd = before().with_ace_prepended(callback_ace(0x0a, 1104)).unwrap();
        let ad = view(sd, vec![srv("kms1.corp.test", 3_733_431)], false, AllowUpdate::SecureOnly);
        let f = audit_ad(&inventory("audit"), &ad, &dns(&["kms1.corp.test"]), now());
        assert_eq!(
            codes(&f),
            vec![("zone-secure-only", None), ("update-blocked-acl", Some("kms2.corp.test".into()))],
            "{f:#?}"
        );
        assert!(
            f[1].message
                .contains("ACE 0 (0x0a;;40 opaque bytes) could not be evaluated, and cannot change this answer"),
            "{}",
            f[1].message
        );
    }

    #[test]
    fn unreadable_token_groups_are_a_finding_naming_the_account() {
        let mut ad = view(before(), vec![srv("kms1.corp.test", 3_733_431)], false, AllowUpdate::SecureOnly);
        if let AdRead::Read(v) = &mut ad {
            v.accounts.insert(
                "KMS2$".into(),
                Err(AccountError::TokenGroupsUnreadable {
                    account: "KMS2$".into(),
                    why: "the directory returned none".into(),
                }),
            );
        }
        let f = audit_ad(&inventory("audit"), &ad, &dns(&["kms1.corp.test"]), now());
        assert_eq!(
            codes(&f),
            vec![("zone-secure-only", None), ("ad-unreadable", Some("kms2.corp.test".into()))],
            "no ACL verdict for KMS2$, and not silence either: {f:#?}"
        );
        assert!(f[1].message.contains("KMS2$") && f[1].message.contains("tokenGroups"), "{}", f[1].message);
        assert!(f[1].message.contains("the ACL check of kms2.corp.test is withheld"), "{}", f[1].message);
    }

    #[test]
    fn undecodable_zone_settings_give_no_verdict_from_a_default() {
        // One dNSProperty value could not be decoded: it may be the allow-update one, so
        // "updates off" (the default) is no verdict.
        let ad = with_node(view(before(), vec![srv("kms1.corp.test", 3_733_431)], false, AllowUpdate::None), |z| {
            z.settings = ZoneProperties::Values(ZoneSettings { skipped: 1, ..settings(AllowUpdate::None, false) })
        });
        let f = audit_ad(&inventory("repair"), &ad, &dns(&["kms1.corp.test"]), now());
        assert_eq!(codes(&f), vec![("ad-unreadable", None)], "{f:#?}");
        assert!(f[0].message.contains("1 dNSProperty value") && f[0].message.contains("corp.test"), "{}", f[0].message);
        assert!(
            f[0].message.contains("update-blocked-acl") && f[0].message.contains("aging"),
            "says what is withheld: {}",
            f[0].message
        );
    }

    #[test]
    fn unreadable_zone_settings_give_no_verdict_from_a_default_when_none_was_returned() {
        let ad = with_node(view(before(), vec![srv("kms1.corp.test", 3_733_431)], false, AllowUpdate::None), |z| {
            z.settings = ZoneProperties::Missing
        });
        let f = audit_ad(&inventory("repair"), &ad, &dns(&["kms1.corp.test"]), now());
        assert_eq!(codes(&f), vec![("ad-unreadable", None)], "{f:#?}");
        assert!(f[0].message.contains("no dNSProperty"), "{}", f[0].message);
        assert!(f[0].fix.contains("dNSProperty"), "{}", f[0].fix);
    }

    #[test]
    fn unreadable_record_values_are_reported_and_the_partial_node_is_not_compared() {
        let ad =
            with_node(view(after(), vec![srv("kms1.corp.test", 3_733_431)], false, AllowUpdate::SecureOnly), |z| {
                if let Some(n) = &mut z.node {
                    n.unreadable_values = 1;
                }
            });
        let f = audit_ad(&inventory("audit"), &ad, &dns(&["kms1.corp.test", "kms2.corp.test"]), now());
        // `after()` grants KMS2$ RPWP only: enough for Windows and Samba's internal DNS, not
        // behind BIND9_DLZ, and said so.
        let kms2 = Some("kms2.corp.test".to_string());
        assert_eq!(
            codes(&f),
            vec![("zone-secure-only", None), ("update-blocked-acl", kms2), ("ad-unreadable", None)],
            "{f:#?}"
        );
        assert!(f[1].message.contains("which Samba's BIND9_DLZ module also asks"), "{}", f[1].message);
        let m = &f[2].message;
        assert!(m.contains("1 dnsRecord value") && m.contains("DC=_vlmcs._tcp,DC=corp.test"), "{m}");
        assert!(m.contains("not compared with DNS"), "{m}");
    }

    #[test]
    fn a_failed_directory_read_is_a_finding_not_silence() {
        let f = audit_ad(&inventory("audit"), &AdRead::Failed { error: "connection refused".into() }, &dns(&[]), now());
        assert_eq!(codes(&f), vec![("ad-unreachable", None)]);
        assert_eq!(f[0].severity, Severity::Critical);
        assert!(f[0].message.contains("connection refused"));
    }
}
