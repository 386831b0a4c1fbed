//! What the DC itself says about its writes: the replication metadata of a dnsNode.

use base64::Engine;

use super::SambaLab;

/// DRSUAPI_ATTID_dnsRecord.
const ATTID_DNS_RECORD: u32 = 0x0009_017e;

impl SambaLab {
    /// How often the DC has written the records of the dnsNode `node` ("_vlmcs._tcp") of the
    /// lab's zone: the version of its dnsRecord attribute in replPropertyMetaData, read from
    /// sam.ldb. It counts writes by anyone (DNS updates, `samba-tool dns`, LDAP) to this node
    /// alone, unlike the zone's SOA serial, which the DC's own `samba_dnsupdate` moves too. A
    /// write that leaves the values as they were (an update adding a record that is already
    /// there) does not count: the DC's metadata only moves when the attribute changes.
    pub fn dns_record_writes(&self, node: &str) -> u32 {
        let sam = self.path("dc/private/sam.ldb");
        let out = self.run(
            "ldbsearch",
            &[
                "-H",
                &sam.to_string_lossy(),
                &format!("--configfile={}", self.smb_conf().display()),
                "-b",
                &format!("DC={node},{}", self.zone_dn()),
                "-s",
                "base",
                "replPropertyMetaData",
            ],
        );
        // LDIF: "replPropertyMetaData:: <base64>", folded onto lines that start with a space.
        let b64: String = out
            .lines()
            .skip_while(|l| !l.starts_with("replPropertyMetaData:: "))
            .enumerate()
            .take_while(|(i, l)| *i == 0 || l.starts_with(' '))
            .map(|(_, l)| l.trim_start_matches("replPropertyMetaData:: ").trim())
            .collect();
        let blob = base64::engine::general_purpose::STANDARD
            .decode(&b64)
            .unwrap_or_else(|e| panic!("replPropertyMetaData of {node} is not base64 ({e}):\n{out}"));
        // replPropertyMetaDataBlob (MS-DRSR 5.172): version 1, reserved, count, reserved, then
        // `count` entries of 48 bytes: attid, version, change time (8), invocation id (16), two USNs.
        let u32_at = |i: usize| blob.get(i..i + 4).map(|b| u32::from_le_bytes(b.try_into().unwrap()));
        assert_eq!(u32_at(0), Some(1), "replPropertyMetaData of {node}: not version 1:\n{out}");
        let count = u32_at(8).unwrap_or(0) as usize;
        (0..count)
            .map(|n| 16 + 48 * n)
            .find(|&at| u32_at(at) == Some(ATTID_DNS_RECORD))
            .and_then(|at| u32_at(at + 4))
            .unwrap_or_else(|| panic!("no dnsRecord entry in the replPropertyMetaData of {node}:\n{out}"))
    }
}
