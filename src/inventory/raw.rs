//! The inventory as written: serde structs that mirror the TOML keys, strictly (unknown keys
//! are errors), with the spans validation needs to place a problem.

use serde::Deserialize;
use toml::Spanned;

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInventory {
    #[serde(default)]
    pub(super) defaults: RawDefaults,
    #[serde(default)]
    pub(super) daemon: RawDaemon,
    pub(super) ad: Option<RawAd>,
    #[serde(default)]
    pub(super) instance: RawInstance,
    #[serde(default)]
    pub(super) key: Vec<RawKey>,
    #[serde(default)]
    pub(super) zone: Vec<RawZone>,
    #[serde(default)]
    pub(super) host: Vec<RawHost>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDefaults {
    pub(super) ttl: Option<Spanned<i64>>,
    pub(super) port: Option<Spanned<i64>>,
    pub(super) timeout: Option<Spanned<String>>,
    pub(super) retries: Option<Spanned<i64>>,
    pub(super) concurrency: Option<Spanned<i64>>,
    pub(super) propagation_timeout: Option<Spanned<String>>,
    pub(super) confirm_probes: Option<Spanned<i64>>,
    pub(super) confirm_window: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDaemon {
    pub(super) state_dir: Option<Spanned<String>>,
    pub(super) interval: Option<Spanned<String>>,
    pub(super) probe_interval: Option<Spanned<String>>,
    pub(super) fail_after: Option<Spanned<i64>>,
    pub(super) recover_after: Option<Spanned<i64>>,
    pub(super) metrics: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInstance {
    pub(super) id: Option<Spanned<String>>,
    pub(super) share_view: Option<bool>,
    pub(super) stale_after: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKey {
    pub(super) name: Spanned<String>,
    pub(super) algorithm: TsigAlgorithmName,
    pub(super) secret_file: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawZone {
    pub(super) name: Spanned<String>,
    pub(super) servers: Spanned<Vec<Spanned<String>>>,
    pub(super) policy: Option<Spanned<Policy>>,
    pub(super) primary: Option<Spanned<String>>,
    pub(super) update_key: Option<Spanned<String>>,
    pub(super) update_auth: Option<Spanned<String>>,
    pub(super) allow_unsigned: Option<Spanned<bool>>,
    pub(super) remove_unknown: Option<bool>,
    pub(super) max_deletes: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHost {
    pub(super) name: Spanned<String>,
    pub(super) zones: Spanned<Vec<Spanned<String>>>,
    pub(super) state: HostState,
    pub(super) port: Option<Spanned<i64>>,
    pub(super) priority: Option<Spanned<i64>>,
    pub(super) weight: Option<Spanned<i64>>,
    pub(super) account: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAd {
    pub(super) urls: Spanned<Vec<Spanned<String>>>,
    pub(super) ca_file: Option<Spanned<String>>,
    pub(super) tls_verify: Option<bool>,
    pub(super) bind_dn: Option<Spanned<String>>,
    pub(super) password_file: Option<Spanned<String>>,
    pub(super) sasl: Option<Spanned<String>>,
    pub(super) kms_group: Option<Spanned<String>>,
    pub(super) principal: Option<Spanned<String>>,
    pub(super) keytab: Option<Spanned<String>>,
}
