//! The BIND9_DLZ half of the Samba lab: `named` serving the DC's zones through Samba's DLZ module.
//!
//! Recipe: /work/shared/reference/interop-labs.md ("Samba 4.17 AD DC with the BIND9_DLZ backend").
//! What had to be found out (Debian bookworm: BIND 9.18, Samba 4.17):
//! * Provision writes `bind-dns/named.conf` with the `dlz_bind9_18.so` line already enabled, and
//!   `server services` in smb.conf without `dns`; both are checked here rather than assumed.
//! * named runs as root (`-u` omitted): the lab dir is a 0700 temp dir that the `bind` user cannot
//!   traverse, and chowning Samba's private files would change what is under test.
//! * The module finds the DC through `SMB_CONF_PATH` (`lp_default_path`); without it, it would read
//!   /etc/samba/smb.conf.
//! * `dnssec-validation no`: with `auto`, named primes the root trust anchor and logs a page of
//!   "network unreachable" in a namespace that only has `lo`.
//! * `minimal-responses yes` and `tkey-gssapi-keytab`, as Samba's `named.txt` asks.
//! * The module reads the directory itself (`bind-dns/dns/sam.ldb`, hard links to the DC's DNS
//!   partitions), so records added by `samba-tool dns add` and ACL changes are seen at once.

use std::fs;
use std::time::Duration;

use super::{DnsBackend, SambaLab, find_tool, spawn_from_keeper, stop_by_pid};

/// Samba ships one module per BIND minor; bookworm's bind9 is 9.18.
const DLZ_MODULE: &str = "/usr/lib/x86_64-linux-gnu/samba/bind9/dlz_bind9_18.so";
/// named stops in well under a second after SIGTERM.
const NAMED_STOP_GRACE: Duration = Duration::from_secs(10);

/// named and Samba's DLZ module are installed, or a panic naming the packages (never a skip).
pub(super) fn preflight() {
    let mut missing = Vec::new();
    for (name, package) in [("named", "bind9"), ("named-checkconf", "bind9-utils")] {
        if find_tool(name).is_none() {
            missing.push(format!("`{name}` (Debian package {package})"));
        }
    }
    if !std::path::Path::new(DLZ_MODULE).is_file() {
        missing.push(format!("{DLZ_MODULE} (Debian package samba-libs)"));
    }
    assert!(
        missing.is_empty(),
        "the Samba + BIND9_DLZ lab (tests/support/samba/dlz.rs) cannot run; missing: {}.\nRun \
         `scripts/install-test-deps` as root",
        missing.join(", ")
    );
}

impl SambaLab {
    /// The log named writes (`named/named.log`): the module's "samba_dlz: allowing update of
    /// signer=…" / "disallowing update" lines, and BIND's own "update failed" lines.
    pub fn named_log(&self) -> String {
        fs::read_to_string(self.path("named/named.log")).unwrap_or_default()
    }

    /// How many UPDATEs by accounts whose name starts with `signer` ("KMS" for KMS1$, KMS2$, …) the
    /// DLZ module committed to `zone`: each "committed transaction on zone" line counted for the
    /// signer of the "allowing update of signer=…" line before it. BIND handles one update of a
    /// zone at a time, so the lines do not interleave. The DC's own `samba_dnsupdate` (signer
    /// DC1$) runs when it likes and is not counted.
    pub fn dlz_commits(&self, zone: &str, signer: &str) -> usize {
        let committed = format!("samba_dlz: committed transaction on zone {zone}");
        let mut last_signer = String::new();
        let mut n = 0;
        for line in self.named_log().lines() {
            if let Some(rest) = line.split("samba_dlz: allowing update of signer=").nth(1) {
                last_signer = rest.split(' ').next().unwrap_or("").to_string();
            } else if line.trim_end().ends_with(&committed) && last_signer.starts_with(signer) {
                n += 1;
            }
        }
        n
    }

    /// Writes named.conf (options of our own, then the provision's `bind-dns/named.conf`) and
    /// starts `named -f` in the namespace; [`SambaLab::wait_ready`] then waits for it to answer.
    pub(super) fn start_named(&mut self) {
        assert_eq!(self.dns_backend, DnsBackend::Bind9Dlz);
        let conf = self.smb_conf();
        let smb = fs::read_to_string(&conf).unwrap_or_else(|e| panic!("read {}: {e}", conf.display()));
        let services = smb.lines().find(|l| l.trim_start().starts_with("server services")).unwrap_or("");
        assert!(
            !services.split(['=', ',', ' ', '\t']).any(|s| s == "dns" || s == "+dns"),
            "BIND serves DNS here: smb.conf must not run Samba's dns service:\n{services}"
        );
        let bind_dns = self.path("dc/bind-dns");
        let dlz_conf = bind_dns.join("named.conf");
        let dlz = fs::read_to_string(&dlz_conf).unwrap_or_else(|e| panic!("read {}: {e}", dlz_conf.display()));
        let enabled = format!("database \"dlopen {DLZ_MODULE}\";");
        if !dlz.lines().any(|l| l.trim() == enabled) {
            // Older provisions leave every `database` line commented: enable the one for 9.18.
            let fixed: String = dlz
                .lines()
                .map(|l| if l.contains(DLZ_MODULE) { format!("    {enabled}\n") } else { format!("{l}\n") })
                .collect();
            assert!(fixed.contains(&enabled), "no {DLZ_MODULE} line in {}:\n{dlz}", dlz_conf.display());
            fs::write(&dlz_conf, &fixed).unwrap_or_else(|e| panic!("write {}: {e}", dlz_conf.display()));
        }
        let dir = self.path("named");
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let d = dir.display();
        let text = format!(
            "options {{\n  directory \"{d}\";\n  pid-file \"{d}/named.pid\";\n  listen-on port 53 {{ {ip}; }};\n  \
             listen-on-v6 {{ none; }};\n  recursion no;\n  notify no;\n  dnssec-validation no;\n  \
             minimal-responses yes;\n  tkey-gssapi-keytab \"{keytab}\";\n}};\n\
             controls {{ }};\n\
             logging {{\n  channel lab {{ file \"{d}/named.log\"; severity info; print-time yes; print-category yes; }};\n  \
             category default {{ lab; }};\n  category update {{ lab; }};\n  category update-security {{ lab; }};\n  \
             category security {{ lab; }};\n  category database {{ lab; }};\n}};\n\
             include \"{dlz_conf}\";\n",
            ip = self.dc_ip,
            keytab = bind_dns.join("dns.keytab").display(),
            dlz_conf = dlz_conf.display(),
        );
        let named_conf = dir.join("named.conf");
        fs::write(&named_conf, text).unwrap_or_else(|e| panic!("write {}: {e}", named_conf.display()));

        let mut check = self.command("named-checkconf");
        check.arg(&named_conf);
        self.checked(check, None, "named-checkconf");

        // -f: foreground, one process; logging as configured, stdout.log catches what comes before.
        let named = find_tool("named").expect("named (checked by preflight)");
        let mut cmd = self.server_command(&named, "named/stdout.log");
        cmd.args(["-f", "-c"]).arg(&named_conf).env("SMB_CONF_PATH", self.smb_conf());
        let child = spawn_from_keeper(cmd).unwrap_or_else(|e| panic!("spawn named: {e}"));
        self.named = Some(child);
    }

    /// SIGTERM to named by PID, then SIGKILL after a grace period. Idempotent.
    pub(super) fn stop_named(&mut self) {
        if let Some(named) = self.named.take() {
            stop_by_pid(named, "named", NAMED_STOP_GRACE);
        }
    }
}
