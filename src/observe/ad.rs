//! Reading the DNS zones Active Directory stores: the dnsZone settings, the `_vlmcs._tcp`
//! dnsNode (records, tombstone, security descriptor) and the KMS hosts' computer accounts with
//! their transitive groups. Everything is read, nothing written; the parsing is done by the
//! pure codecs in [`crate::wire`].
//!
//! The descriptor is asked for with the SD_FLAGS control set to owner, group and DACL
//! (kms-dns-ad.md §4.4): the SACL needs a privilege kmsdns should not have, and without the
//! control AD returns it only to administrators.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ldap3::controls::RawControl;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry, ldap_escape};

use crate::inventory::{AdSettings, Inventory};
use crate::model::ad::{AccountError, AdAccount, AdGroup, AdNode, AdRead, AdView, AdZone, ZoneProperties};
use crate::name::DnsName;
use crate::wire::dnsp::{DnsRecord, ZoneSettings};
use crate::wire::security::{SecurityDescriptor, Sid};

/// SD_FLAGS (1.2.840.113556.1.4.801): `SEQUENCE { INTEGER flags }` in BER.
pub fn sd_flags(flags: u8) -> RawControl {
    // One-byte INTEGER values below 0x80 encode as themselves.
    RawControl {
        ctype: "1.2.840.113556.1.4.801".into(),
        crit: true,
        val: Some(vec![0x30, 0x03, 0x02, 0x01, flags & 0x7f]),
    }
}

/// SD_FLAGS value for owner, group and DACL.
pub const OWNER_GROUP_DACL: u8 = 0x7;
/// SD_FLAGS value for the DACL alone: what an ACL repair writes, leaving owner, group and SACL.
pub const DACL_ONLY: u8 = 0x4;

/// Values of a binary attribute: ldap3 files an attribute under `bin_attrs` only when one of
/// its values is not UTF-8, so both maps are read.
pub fn binary_values(e: &SearchEntry, attr: &str) -> Vec<Vec<u8>> {
    let find = |m: &std::collections::HashMap<String, Vec<Vec<u8>>>| {
        m.iter().find(|(k, _)| k.eq_ignore_ascii_case(attr)).map(|(_, v)| v.clone())
    };
    find(&e.bin_attrs).unwrap_or_else(|| {
        e.attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(attr))
            .map(|(_, v)| v.iter().map(|s| s.clone().into_bytes()).collect())
            .unwrap_or_default()
    })
}

fn text_value(e: &SearchEntry, attr: &str) -> Option<String> {
    e.attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(attr)).and_then(|(_, v)| v.first().cloned())
}

/// A connection to the first DC of `ad.urls` that answers and accepts the bind.
pub async fn connect(ad: &AdSettings, timeout: Duration) -> Result<(Ldap, String), String> {
    let password = crate::keys::read_secret_file(&ad.password_file).map_err(|e| format!("[ad] password_file: {e}"))?;
    let password = password.trim_end_matches(['\n', '\r']);
    let tls = tls_config(ad)?;
    let mut failures = Vec::new();
    for url in &ad.urls {
        let mut settings = LdapConnSettings::new().set_conn_timeout(timeout).set_starttls(url.starts_with("ldap://"));
        settings = match &tls {
            Some(config) => settings.set_config(config.clone()),
            None => settings.set_no_tls_verify(true),
        };
        let attempt = async {
            let (conn, mut ldap) = LdapConnAsync::with_settings(settings, url).await.map_err(|e| e.to_string())?;
            ldap3::drive!(conn);
            ldap.with_timeout(timeout)
                .simple_bind(&ad.bind_dn, password)
                .await
                .map_err(|e| e.to_string())?
                .success()
                .map_err(|e| format!("bind as {} refused: {e}", ad.bind_dn))?;
            Ok::<Ldap, String>(ldap)
        };
        match tokio::time::timeout(timeout * 2, attempt).await {
            Ok(Ok(ldap)) => return Ok((ldap, url.clone())),
            Ok(Err(e)) => failures.push(format!("{url}: {e}")),
            Err(_) => failures.push(format!("{url}: no answer within {}", humantime::format_duration(timeout * 2))),
        }
    }
    Err(format!("no domain controller could be read: {}", failures.join("; ")))
}

/// The TLS settings: the configured CA, or (tls_verify = false) none at all.
fn tls_config(ad: &AdSettings) -> Result<Option<Arc<rustls::ClientConfig>>, String> {
    if !ad.tls_verify {
        return Ok(None);
    }
    let mut roots = rustls::RootCertStore::empty();
    match &ad.ca_file {
        Some(path) => {
            use rustls_pki_types::pem::PemObject;
            let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("[ad] ca_file {}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("[ad] ca_file {}: {e}", path.display()))?;
                roots.add(cert).map_err(|e| format!("[ad] ca_file {}: {e}", path.display()))?;
            }
        }
        None => return Err("[ad] ca_file is needed to verify the DC's certificate (or tls_verify = false)".into()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(Arc::new(config)))
}

/// Reads everything the AD audit needs. A failure anywhere before the first answer is the
/// whole read failing (never "no problem"); a single missing object is recorded as such.
pub async fn observe_ad(inv: &Inventory, ad: &AdSettings) -> AdRead {
    let timeout = inv.defaults.timeout.max(Duration::from_secs(2));
    let (mut ldap, dc) = match connect(ad, timeout).await {
        Ok(c) => c,
        Err(error) => return AdRead::Failed { error },
    };
    let result = read_all(&mut ldap, inv, ad, timeout).await;
    let _ = ldap.unbind().await;
    match result {
        Ok((zones, accounts, kms_group)) => AdRead::Read(AdView { dc, zones, accounts, kms_group }),
        Err(error) => AdRead::Failed { error: format!("{dc}: {error}") },
    }
}

type Read = (Vec<AdZone>, BTreeMap<String, Result<AdAccount, AccountError>>, Option<Result<AdGroup, String>>);

async fn read_all(ldap: &mut Ldap, inv: &Inventory, ad: &AdSettings, timeout: Duration) -> Result<Read, String> {
    let (default_nc, root_nc) = naming_contexts(ldap, timeout).await?;
    let containers = [
        format!("CN=MicrosoftDNS,DC=DomainDnsZones,{default_nc}"),
        format!("CN=MicrosoftDNS,DC=ForestDnsZones,{root_nc}"),
        format!("CN=MicrosoftDNS,CN=System,{default_nc}"),
    ];
    let mut zones = Vec::new();
    for z in &inv.zones {
        zones.push(read_zone(ldap, &containers, &z.name, timeout).await?);
    }
    let mut accounts = BTreeMap::new();
    for account in inv.hosts.iter().filter_map(|h| h.account.as_ref()) {
        let a = read_account(ldap, &default_nc, account, timeout).await;
        accounts.insert(account.clone(), a);
    }
    let kms_group = match &ad.kms_group {
        Some(g) => Some(read_group(ldap, &default_nc, g, timeout).await),
        None => None,
    };
    Ok((zones, accounts, kms_group))
}

async fn naming_contexts(ldap: &mut Ldap, timeout: Duration) -> Result<(String, String), String> {
    let (entries, _) = ldap
        .with_timeout(timeout)
        .search("", Scope::Base, "(objectClass=*)", vec!["defaultNamingContext", "rootDomainNamingContext"])
        .await
        .map_err(|e| format!("rootDSE: {e}"))?
        .success()
        .map_err(|e| format!("rootDSE: {e}"))?;
    let e = entries.into_iter().next().map(SearchEntry::construct).ok_or("rootDSE: no entry")?;
    let default_nc = text_value(&e, "defaultNamingContext").ok_or("rootDSE has no defaultNamingContext")?;
    let root_nc = text_value(&e, "rootDomainNamingContext").unwrap_or_else(|| default_nc.clone());
    Ok((default_nc, root_nc))
}

/// Searches, treating "no such object" (a partition that does not exist) as no entries.
async fn search(
    ldap: &mut Ldap,
    timeout: Duration,
    base: &str,
    scope: Scope,
    filter: &str,
    attrs: Vec<&str>,
    controls: Vec<RawControl>,
) -> Result<Vec<SearchEntry>, String> {
    let result = ldap
        .with_controls(controls)
        .with_timeout(timeout)
        .search(base, scope, filter, attrs)
        .await
        .map_err(|e| format!("search {base}: {e}"))?;
    match result.1.rc {
        0 => Ok(result.0.into_iter().map(SearchEntry::construct).collect()),
        32 => Ok(vec![]),
        rc => Err(format!("search {base} {filter}: LDAP error {rc} {}", result.1.text)),
    }
}

async fn read_zone(
    ldap: &mut Ldap,
    containers: &[String],
    zone: &DnsName,
    timeout: Duration,
) -> Result<AdZone, String> {
    let filter = format!("(&(objectClass=dnsZone)(name={}))", ldap_escape(zone.as_str()));
    for container in containers {
        let found = search(ldap, timeout, container, Scope::OneLevel, &filter, vec!["dNSProperty"], vec![]).await?;
        let Some(z) = found.into_iter().next() else { continue };
        let values = binary_values(&z, "dNSProperty");
        let settings = if values.is_empty() {
            ZoneProperties::Missing
        } else {
            ZoneProperties::Values(ZoneSettings::from_values(values.iter().map(Vec::as_slice)))
        };
        let node = read_node(ldap, &z.dn, timeout).await?;
        return Ok(AdZone { zone: zone.clone(), dn: Some(z.dn), settings, node });
    }
    Ok(AdZone { zone: zone.clone(), dn: None, settings: ZoneProperties::Missing, node: None })
}

async fn read_node(ldap: &mut Ldap, zone_dn: &str, timeout: Duration) -> Result<Option<AdNode>, String> {
    let attrs = vec!["dnsRecord", "dNSTombstoned", "whenChanged", "nTSecurityDescriptor"];
    let filter = "(&(objectClass=dnsNode)(name=_vlmcs._tcp))";
    let found =
        search(ldap, timeout, zone_dn, Scope::OneLevel, filter, attrs, vec![sd_flags(OWNER_GROUP_DACL)]).await?;
    let Some(n) = found.into_iter().next() else { return Ok(None) };
    let values = binary_values(&n, "dnsRecord");
    let records: Vec<DnsRecord> = values.iter().filter_map(|v| DnsRecord::parse(v).ok()).collect();
    let sd_bytes = binary_values(&n, "nTSecurityDescriptor").into_iter().next().unwrap_or_default();
    Ok(Some(AdNode {
        dn: n.dn.clone(),
        unreadable_values: values.len() - records.len(),
        records,
        tombstoned: text_value(&n, "dNSTombstoned").is_some_and(|t| t.eq_ignore_ascii_case("TRUE")),
        when_changed: text_value(&n, "whenChanged"),
        sd: SecurityDescriptor::parse(&sd_bytes).ok(),
        sd_bytes,
    }))
}

/// Reads the descriptor of `dn` as it is now, with the given SD_FLAGS.
pub async fn read_sd(ldap: &mut Ldap, dn: &str, flags: u8, timeout: Duration) -> Result<Vec<u8>, String> {
    let found =
        search(ldap, timeout, dn, Scope::Base, "(objectClass=*)", vec!["nTSecurityDescriptor"], vec![sd_flags(flags)])
            .await?;
    let e = found.into_iter().next().ok_or_else(|| format!("{dn} no longer exists"))?;
    binary_values(&e, "nTSecurityDescriptor").into_iter().next().ok_or_else(|| format!("{dn}: no nTSecurityDescriptor"))
}

async fn read_account(
    ldap: &mut Ldap,
    base: &str,
    account: &str,
    timeout: Duration,
) -> Result<AdAccount, AccountError> {
    let filter = format!("(sAMAccountName={})", ldap_escape(account));
    let found = search(ldap, timeout, base, Scope::Subtree, &filter, vec!["objectSid"], vec![])
        .await
        .map_err(|error| AccountError::Search { account: account.into(), error })?;
    let e = found.into_iter().next().ok_or_else(|| AccountError::NotFound { account: account.into() })?;
    let sid = binary_values(&e, "objectSid")
        .first()
        .and_then(|b| Sid::parse(b).ok())
        .ok_or_else(|| AccountError::NoObjectSid { account: account.into() })?;
    let unreadable = |why: String| AccountError::TokenGroupsUnreadable { account: account.into(), why };
    // tokenGroups is computed, and only for a base-scope search of the object itself.
    let tg = search(ldap, timeout, &e.dn, Scope::Base, "(objectClass=*)", vec!["tokenGroups"], vec![])
        .await
        .map_err(unreadable)?;
    let values = tg.first().map(|t| binary_values(t, "tokenGroups")).unwrap_or_default();
    let groups: Vec<Sid> = values.iter().filter_map(|b| Sid::parse(b).ok()).collect();
    // Every computer is at least in Domain Computers: no groups means the bind account may not
    // read tokenGroups, and judging an empty token would invent ACL problems. A value that is
    // no SID makes the token incomplete, and an incomplete token may lack the very group a
    // grant names.
    if values.is_empty() {
        return Err(unreadable("the directory returned none; the bind account may not read it".into()));
    }
    if groups.len() < values.len() {
        return Err(unreadable(format!("{} of its {} values are no SID", values.len() - groups.len(), values.len())));
    }
    Ok(AdAccount { dn: e.dn, sid, groups })
}

async fn read_group(ldap: &mut Ldap, base: &str, group: &str, timeout: Duration) -> Result<AdGroup, String> {
    let g = ldap_escape(group);
    let filter = format!("(&(objectClass=group)(|(sAMAccountName={g})(cn={g})))");
    let found = search(ldap, timeout, base, Scope::Subtree, &filter, vec!["objectSid"], vec![]).await?;
    let e = found.into_iter().next().ok_or_else(|| format!("no group {group} in the directory"))?;
    let sid = binary_values(&e, "objectSid")
        .first()
        .and_then(|b| Sid::parse(b).ok())
        .ok_or_else(|| format!("{group}: no readable objectSid"))?;
    Ok(AdGroup { dn: e.dn, sid })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sd_flags_are_ber_encoded() {
        assert_eq!(sd_flags(OWNER_GROUP_DACL).val, Some(vec![0x30, 0x03, 0x02, 0x01, 0x07]));
        assert_eq!(sd_flags(DACL_ONLY).val, Some(vec![0x30, 0x03, 0x02, 0x01, 0x04]));
    }
}
