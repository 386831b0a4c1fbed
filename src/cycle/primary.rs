//! Where a zone's updates go (its primary) and how they are signed, and the lookups that
//! need: server addresses, a host's addresses.

use std::net::SocketAddr;

use crate::apply::{self};
use crate::inventory::{Inventory, ServerAddr, ServerHost, Zone};
use crate::keys::TsigKey;
use crate::model::{Observation, Resolution};
use crate::name::DnsName;
use crate::observe::{self, DnsReader};

/// How a zone's updates are signed. GSS-TSIG needs the DNS server's name for its Kerberos
/// service (`DNS/<fqdn>`): `primary =` when it is a name, else the SOA MNAME the servers gave.
pub fn auth_for(inv: &Inventory, zone: &Zone, mname: Option<&DnsName>) -> Result<apply::Auth, String> {
    #[cfg(not(feature = "gss-tsig"))]
    let _ = mname;
    if zone.gss_tsig {
        #[cfg(feature = "gss-tsig")]
        {
            let server_name = match zone.primary.as_ref().map(|p| &p.host) {
                Some(ServerHost::Name(n)) => n.clone(),
                _ => mname.cloned().ok_or_else(|| {
                    format!(
                        "zone {}: GSS-TSIG needs the DNS server's name and no SOA MNAME was read: set primary = \"<the DC's FQDN>\"",
                        zone.name
                    )
                })?,
            };
            let principal = inv.ad.as_ref().and_then(|a| a.principal.clone());
            return Ok(apply::Auth::Gss { server_name, principal });
        }
        #[cfg(not(feature = "gss-tsig"))]
        return Err(format!("zone {}: this kmsdns was built without GSS-TSIG", zone.name));
    }
    match zone.update_key.as_ref() {
        Some(name) => {
            let spec = inv.key(name).ok_or_else(|| format!("zone {}: no [[key]] named {name}", zone.name))?;
            TsigKey::load(spec).map(apply::Auth::Tsig).map_err(|e| e.to_string())
        }
        None if zone.allow_unsigned => Ok(apply::Auth::Unsigned),
        None => {
            Err(format!("zone {}: no update_key, update_auth or allow_unsigned: updates cannot be sent", zone.name))
        }
    }
}

/// The SOA MNAME of a zone, as the observation read it.
pub fn zone_mname(obs: &Observation, zone: &Zone) -> Option<DnsName> {
    obs.zones.iter().find(|v| v.zone == zone.name).and_then(|v| v.servers.iter().find_map(|s| s.mname.clone()))
}

/// The SOA MNAME from the first of the zone's servers that gives one.
pub async fn read_mname(inv: &Inventory, zone: &Zone) -> Option<DnsName> {
    let reader = DnsReader::new(inv.defaults.timeout, inv.defaults.retries);
    for server in server_addrs(inv, &zone.servers).await {
        if let (_, _, Some(m)) = reader.zone_view(server, &zone.name).await {
            return Some(m);
        }
    }
    None
}

/// The addresses of a zone's servers, names looked up through the system resolver (as
/// observation does); a server whose name does not resolve is left out.
pub async fn server_addrs(inv: &Inventory, servers: &[ServerAddr]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for s in servers {
        out.extend(observe::dns::server_socket_addrs(s, inv.defaults.timeout).await.unwrap_or_default());
    }
    out
}

/// A host's addresses as kmsdns looks them up everywhere: from its zone's servers when it lies
/// in a declared zone, else through the system resolver.
pub async fn addresses_of(inv: &Inventory, name: &DnsName) -> Resolution {
    observe::AddressLookup::new(inv).await.addresses(name).await
}

/// Where a zone's updates go: `primary =`, or the SOA MNAME on port 53.
pub async fn primary(inv: &Inventory, obs: &Observation, zone: &Zone) -> Result<SocketAddr, String> {
    resolve_primary(inv, zone, zone_mname(obs, zone)).await
}

/// Where a zone's updates go, given the SOA MNAME its servers gave (if any was read).
pub async fn resolve_primary(inv: &Inventory, zone: &Zone, mname: Option<DnsName>) -> Result<SocketAddr, String> {
    let (host, port) = match &zone.primary {
        Some(ServerAddr { host, port }) => (host.clone(), *port),
        None => {
            let mname = mname.ok_or_else(|| {
                format!("zone {}: no SOA MNAME was read, so the primary is unknown; set `primary =`", zone.name)
            })?;
            (ServerHost::Name(mname), 53)
        }
    };
    let name = match host {
        ServerHost::Ip(ip) => return Ok(SocketAddr::new(ip, port)),
        ServerHost::Name(n) => n,
    };
    match addresses_of(inv, &name).await {
        Resolution::Addresses { addresses, .. } => Ok(SocketAddr::new(addresses[0], port)),
        Resolution::NoAddress => Err(format!("zone {}: the primary {name} has no address; set `primary =`", zone.name)),
        Resolution::Failed { error } => {
            Err(format!("zone {}: the primary {name} could not be resolved ({error}); set `primary =`", zone.name))
        }
    }
}
