//! The values Active Directory stores for AD-integrated DNS: one `dnsRecord` value per resource
//! record on a dnsNode (MS-DNSP 2.3.2.2) and the `dNSProperty` values of a dnsZone (MS-DNSP
//! 2.3.2.1). Layouts, worked bytes and the sources behind them are in kms-dns-ad.md §3.
//!
//! The audit reads these to see what a domain controller really holds for `_vlmcs._tcp`: who
//! published (static records are the usual stale ones), when (the aging timestamp), and whether
//! the zone takes secure updates at all. Pure codec: no I/O, and no input makes it panic.
//!
//! Names are DNS_COUNT_NAME (MS-DNSP 2.2.2.2.2), returned as presentation text without the
//! trailing dot. A label byte that cannot stand in text as itself (`.`, `\`, a space, a
//! control byte, or a byte of invalid UTF-8) is written `\.`, `\\` or `\DDD` as in RFC 1035
//! §5.1, so every name read from AD encodes back to the same bytes.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `dnsRecord.Type` of the record AD leaves behind when the last record of a name is deleted
/// (DNS_TYPE_ZERO, "TOMBSTONE"; MS-DNSP 2.2.2.2.4.23).
pub const TYPE_TOMBSTONE: u16 = 0;
pub const TYPE_A: u16 = 1;
pub const TYPE_NS: u16 = 2;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_SOA: u16 = 6;
pub const TYPE_PTR: u16 = 12;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_SRV: u16 = 33;

/// The only `Version` MS-DNSP allows. DNS servers ignore values with another version, so the
/// parser still reads them and the audit can say why a record AD holds is never served.
pub const VERSION: u8 = 5;
/// `Rank` of authoritative zone data (DNS_RANK_ZONE), what servers write for every record they
/// own. Samba writes 0 for tombstones.
pub const RANK_ZONE: u8 = 0xF0;

/// Header of every `dnsRecord` value: DataLength, Type, Version, Rank, Flags, Serial, TTL,
/// Reserved, TimeStamp.
const RECORD_HEADER_LEN: usize = 24;
/// Seconds from 1601-01-01T00:00Z, the epoch of FILETIME and of the aging timestamp, to the
/// Unix epoch.
const SECS_1601_TO_1970: i128 = 11_644_473_600;
const NANOS_PER_SEC: i128 = 1_000_000_000;
/// RFC 1035 §2.3.4.
const MAX_LABEL_LEN: usize = 63;
/// RFC 1035 §2.3.4, counted as on the wire: the length bytes, the labels and the root's zero.
const MAX_NAME_WIRE_LEN: usize = 255;

/// Why bytes are not a `dnsRecord` or `dNSProperty` value, or a value cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnspError {
    #[error("the dnsRecord value is {0} bytes, shorter than its 24-byte header")]
    ShortRecord(usize),
    #[error("the dnsRecord value announces {data_length} bytes of record data but only {available} follow its header")]
    RecordDataBeyondValue { data_length: usize, available: usize },
    #[error("the {} record data is {len} bytes where {expected} are expected", type_name(*rr_type))]
    DataLength { rr_type: u16, len: usize, expected: usize },
    #[error("the {} record data ends before its fields do", type_name(*rr_type))]
    ShortData { rr_type: u16 },
    #[error("the {} record data has {extra} bytes after its last field", type_name(*rr_type))]
    TrailingData { rr_type: u16, extra: usize },
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("the record data is {0} bytes; a dnsRecord value holds at most 65535")]
    DataTooLong(usize),
    #[error("the dNSProperty value is {0} bytes, shorter than its 20-byte header")]
    ShortProperty(usize),
    #[error("the dNSProperty value announces {data_length} bytes of data but only {available} follow its header")]
    PropertyDataBeyondValue { data_length: usize, available: usize },
}

/// Why a DNS_COUNT_NAME cannot be read, or a name cannot be written as one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a name is cut short by the end of the record data")]
    Truncated,
    #[error("a name has a label of {0} bytes; DNS labels are at most 63")]
    LabelTooLong(usize),
    #[error("a name is {0} bytes long on the wire; DNS names are at most 255")]
    TooLong(usize),
    #[error("a name announces {count} labels but its label {index} is empty")]
    LabelCount { count: u8, index: u8 },
    #[error("a name is not terminated by a zero byte after its {0} labels")]
    NotTerminated(u8),
    #[error("a name runs {0} bytes past the Length it announces")]
    Overrun(usize),
    #[error("the name {0:?} has an empty label")]
    EmptyLabel(String),
    #[error("the name {0:?} has an escape that is not \\DDD (000-255) or \\ and one character")]
    BadEscape(String),
}

/// One `dnsRecord` value (MS-DNSP 2.3.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRecord {
    /// DNS RR type; [`RecordData::rr_type`] is the type the data implies, and the two agree for
    /// every record this module builds or reads (apart from [`RecordData::Unknown`]).
    pub rr_type: u16,
    /// Must be [`VERSION`]; anything else is read but never served by a DNS server.
    pub version: u8,
    pub rank: u8,
    /// Must be 0.
    pub flags: u16,
    /// The zone's SOA serial when the value was written.
    pub serial: u32,
    /// Seconds. The only big-endian field of the header.
    pub ttl: u32,
    /// Aging timestamp in hours since 1601-01-01T00:00Z; 0 marks a static record, which is
    /// never refreshed and never scavenged (kms-dns-ad.md §5).
    pub timestamp: u32,
    pub data: RecordData,
}

/// The type-specific part of a `dnsRecord` value (kms-dns-ad.md §3.3). Fixed-size fields inside
/// it are big-endian, as in DNS messages; the tombstone time is a little-endian FILETIME.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
    },
    Ns(String),
    Cname(String),
    Ptr(String),
    Soa {
        serial: u32,
        refresh: u32,
        retry: u32,
        expire: u32,
        minimum: u32,
        mname: String,
        rname: String,
    },
    /// What is left of a name whose last record was deleted: the deletion time as a FILETIME
    /// (100-ns ticks since 1601-01-01T00:00Z). The node also carries `dNSTombstoned: TRUE`.
    Tombstone {
        entombed: u64,
    },
    /// Any other type, and the data of a value whose `Version` is not 5 when it does not parse
    /// as its type, kept byte for byte.
    Unknown {
        rr_type: u16,
        bytes: Vec<u8>,
    },
}

impl DnsRecord {
    /// A record with the header a DNS server writes for zone data: version 5, rank zone, no
    /// flags.
    pub fn new(data: RecordData, ttl: u32, serial: u32, timestamp: u32) -> DnsRecord {
        DnsRecord { rr_type: data.rr_type(), version: VERSION, rank: RANK_ZONE, flags: 0, serial, ttl, timestamp, data }
    }

    /// The SRV record a KMS host publishes for itself (`_vlmcs._tcp`, port 1688 unless moved).
    /// `timestamp` 0 makes it static, as records written over LDAP or by an admin are.
    pub fn srv(
        priority: u16,
        weight: u16,
        port: u16,
        target: impl Into<String>,
        ttl: u32,
        serial: u32,
        timestamp: u32,
    ) -> DnsRecord {
        DnsRecord::new(RecordData::Srv { priority, weight, port, target: target.into() }, ttl, serial, timestamp)
    }

    /// The tombstone a server writes when it deletes the last record of a name, as Samba does
    /// (rank 0, TTL 0, static; kms-dns-ad.md §3.5).
    pub fn tombstone(entombed: SystemTime, serial: u32) -> DnsRecord {
        let mut record = DnsRecord::new(RecordData::Tombstone { entombed: filetime(entombed) }, 0, serial, 0);
        record.rank = 0;
        record
    }

    /// Reads one `dnsRecord` value. Bytes after the announced DataLength are ignored, as
    /// MS-DNSP readers do; data shorter than announced is an error.
    pub fn parse(value: &[u8]) -> Result<DnsRecord, DnspError> {
        let header = value.get(..RECORD_HEADER_LEN).ok_or(DnspError::ShortRecord(value.len()))?;
        let u32_at = |at: usize| [header[at], header[at + 1], header[at + 2], header[at + 3]];
        let data_length = usize::from(u16::from_le_bytes([header[0], header[1]]));
        let rr_type = u16::from_le_bytes([header[2], header[3]]);
        let version = header[4];
        let data = value
            .get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + data_length)
            .ok_or(DnspError::RecordDataBeyondValue { data_length, available: value.len() - RECORD_HEADER_LEN })?;
        let data = match RecordData::parse(rr_type, data) {
            Ok(data) => data,
            Err(_) if version != VERSION => RecordData::Unknown { rr_type, bytes: data.to_vec() },
            Err(e) => return Err(e),
        };
        Ok(DnsRecord {
            rr_type,
            version,
            rank: header[5],
            flags: u16::from_le_bytes([header[6], header[7]]),
            serial: u32::from_le_bytes(u32_at(8)),
            ttl: u32::from_be_bytes(u32_at(12)),
            // Bytes 16..20 are Reserved (0); they are not kept.
            timestamp: u32::from_le_bytes(u32_at(20)),
            data,
        })
    }

    /// Encodes the value as AD stores it. A value read by [`DnsRecord::parse`] comes back byte
    /// for byte unless its Reserved field was not 0 or a name had pad bytes after its final
    /// zero. Fails only for data that has no encoding: a name with an empty label, a label over
    /// 63 bytes, a name over 255, or data over 65535 bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, DnspError> {
        let data = self.data.to_bytes()?;
        let data_length = u16::try_from(data.len()).map_err(|_| DnspError::DataTooLong(data.len()))?;
        let mut out = Vec::with_capacity(RECORD_HEADER_LEN + data.len());
        out.extend_from_slice(&data_length.to_le_bytes());
        out.extend_from_slice(&self.rr_type.to_le_bytes());
        out.extend_from_slice(&[self.version, self.rank]);
        out.extend_from_slice(&self.flags.to_le_bytes());
        out.extend_from_slice(&self.serial.to_le_bytes());
        out.extend_from_slice(&self.ttl.to_be_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&self.timestamp.to_le_bytes());
        out.extend_from_slice(&data);
        Ok(out)
    }

    /// A static record (timestamp 0) never ages, so scavenging never removes it.
    pub fn is_static(&self) -> bool {
        self.timestamp == 0
    }

    /// When the record was last registered or refreshed; `None` for a static record.
    pub fn timestamp_time(&self) -> Option<SystemTime> {
        if self.is_static() { None } else { from_hours_since_1601(self.timestamp) }
    }
}

impl RecordData {
    /// The DNS RR type this data is written as.
    pub fn rr_type(&self) -> u16 {
        match self {
            RecordData::A(_) => TYPE_A,
            RecordData::Aaaa(_) => TYPE_AAAA,
            RecordData::Srv { .. } => TYPE_SRV,
            RecordData::Ns(_) => TYPE_NS,
            RecordData::Cname(_) => TYPE_CNAME,
            RecordData::Ptr(_) => TYPE_PTR,
            RecordData::Soa { .. } => TYPE_SOA,
            RecordData::Tombstone { .. } => TYPE_TOMBSTONE,
            RecordData::Unknown { rr_type, .. } => *rr_type,
        }
    }

    fn parse(rr_type: u16, data: &[u8]) -> Result<RecordData, DnspError> {
        let fixed = |expected: usize| {
            if data.len() == expected {
                Ok(data)
            } else {
                Err(DnspError::DataLength { rr_type, len: data.len(), expected })
            }
        };
        let short = DnspError::ShortData { rr_type };
        let be16 = |at: usize| data.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]])).ok_or(short.clone());
        let be32 =
            |at: usize| data.get(at..at + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])).ok_or(short.clone());
        // Names must end the data: anything after them is a writer's error worth reporting.
        let ends_at = |end: usize| {
            if end == data.len() { Ok(()) } else { Err(DnspError::TrailingData { rr_type, extra: data.len() - end }) }
        };
        Ok(match rr_type {
            TYPE_TOMBSTONE => {
                let b = fixed(8)?;
                RecordData::Tombstone { entombed: u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) }
            }
            TYPE_A => {
                let b = fixed(4)?;
                RecordData::A(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
            }
            TYPE_AAAA => {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(fixed(16)?);
                RecordData::Aaaa(Ipv6Addr::from(octets))
            }
            TYPE_SRV => {
                let (priority, weight, port) = (be16(0)?, be16(2)?, be16(4)?);
                let (target, end) = read_count_name(data, 6)?;
                ends_at(end)?;
                RecordData::Srv { priority, weight, port, target }
            }
            TYPE_NS | TYPE_CNAME | TYPE_PTR => {
                let (name, end) = read_count_name(data, 0)?;
                ends_at(end)?;
                match rr_type {
                    TYPE_NS => RecordData::Ns(name),
                    TYPE_CNAME => RecordData::Cname(name),
                    _ => RecordData::Ptr(name),
                }
            }
            TYPE_SOA => {
                let (serial, refresh, retry, expire, minimum) = (be32(0)?, be32(4)?, be32(8)?, be32(12)?, be32(16)?);
                let (mname, next) = read_count_name(data, 20)?;
                let (rname, end) = read_count_name(data, next)?;
                ends_at(end)?;
                RecordData::Soa { serial, refresh, retry, expire, minimum, mname, rname }
            }
            _ => RecordData::Unknown { rr_type, bytes: data.to_vec() },
        })
    }

    fn to_bytes(&self) -> Result<Vec<u8>, DnspError> {
        let mut out = Vec::new();
        match self {
            RecordData::A(ip) => out.extend_from_slice(&ip.octets()),
            RecordData::Aaaa(ip) => out.extend_from_slice(&ip.octets()),
            RecordData::Srv { priority, weight, port, target } => {
                for v in [priority, weight, port] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
                write_count_name(&mut out, target)?;
            }
            RecordData::Ns(name) | RecordData::Cname(name) | RecordData::Ptr(name) => write_count_name(&mut out, name)?,
            RecordData::Soa { serial, refresh, retry, expire, minimum, mname, rname } => {
                for v in [serial, refresh, retry, expire, minimum] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
                write_count_name(&mut out, mname)?;
                write_count_name(&mut out, rname)?;
            }
            RecordData::Tombstone { entombed } => out.extend_from_slice(&entombed.to_le_bytes()),
            RecordData::Unknown { bytes, .. } => out.extend_from_slice(bytes),
        }
        Ok(out)
    }
}

fn type_name(rr_type: u16) -> String {
    match rr_type {
        TYPE_TOMBSTONE => "TOMBSTONE".into(),
        TYPE_A => "A".into(),
        TYPE_NS => "NS".into(),
        TYPE_CNAME => "CNAME".into(),
        TYPE_SOA => "SOA".into(),
        TYPE_PTR => "PTR".into(),
        TYPE_AAAA => "AAAA".into(),
        TYPE_SRV => "SRV".into(),
        other => format!("type-{other}"),
    }
}

/// Reads the DNS_COUNT_NAME at `at`: Length (bytes of RawName, the final zero included),
/// LabelCount, then RawName = (length, label)* 0. Returns the name and the offset after it.
///
/// MS-DNSP gives the empty string as Length 0, LabelCount 0 and no RawName; Windows writes the
/// root `.` (an MX of `.`) as Length 1, LabelCount 0, RawName `00` (Samba's ndr_dnsp.c keeps
/// both). They read back as `""` and `"."`. Like Samba, pad bytes between the zero and the end
/// of Length are skipped; they are the one thing re-encoding does not keep.
fn read_count_name(data: &[u8], at: usize) -> Result<(String, usize), NameError> {
    let (len, count) = match data.get(at..at + 2) {
        Some(&[len, count]) => (usize::from(len), count),
        _ => return Err(NameError::Truncated),
    };
    let raw_start = at + 2;
    if len == 0 && count == 0 {
        return Ok((String::new(), raw_start));
    }
    let mut pos = raw_start;
    let mut text = String::new();
    for index in 0..count {
        let label_len = usize::from(*data.get(pos).ok_or(NameError::Truncated)?);
        if label_len == 0 {
            return Err(NameError::LabelCount { count, index });
        }
        if label_len > MAX_LABEL_LEN {
            return Err(NameError::LabelTooLong(label_len));
        }
        let label = data.get(pos + 1..pos + 1 + label_len).ok_or(NameError::Truncated)?;
        if index > 0 {
            text.push('.');
        }
        push_label_text(&mut text, label);
        pos += 1 + label_len;
    }
    match data.get(pos) {
        Some(0) => pos += 1,
        Some(_) => return Err(NameError::NotTerminated(count)),
        None => return Err(NameError::Truncated),
    }
    // Length is one byte, so a name that stays within it is within the 255 of RFC 1035 too.
    let wire_len = pos - raw_start;
    if wire_len > len {
        return Err(NameError::Overrun(wire_len - len));
    }
    let end = raw_start + len;
    if end > data.len() {
        return Err(NameError::Truncated);
    }
    if count == 0 {
        text.push('.');
    }
    Ok((text, end))
}

fn push_label_text(text: &mut String, label: &[u8]) {
    let escape = |text: &mut String, b: u8| text.push_str(&format!("\\{b:03}"));
    match std::str::from_utf8(label) {
        Ok(s) => {
            for c in s.chars() {
                match c {
                    '.' | '\\' => {
                        text.push('\\');
                        text.push(c);
                    }
                    // Only ASCII controls and space are single bytes that need escaping; other
                    // characters stand for their UTF-8 bytes.
                    c if c.is_ascii_control() || c == ' ' => escape(text, c as u8),
                    c => text.push(c),
                }
            }
        }
        Err(_) => {
            for &b in label {
                match b {
                    b'.' | b'\\' => {
                        text.push('\\');
                        text.push(char::from(b));
                    }
                    0x21..=0x7e => text.push(char::from(b)),
                    b => escape(text, b),
                }
            }
        }
    }
}

/// The labels of a name in presentation text; `None` for the empty string, which MS-DNSP
/// encodes without a RawName, and no labels for the root `.`.
fn name_labels(name: &str) -> Result<Option<Vec<Vec<u8>>>, NameError> {
    if name.is_empty() {
        return Ok(None);
    }
    if name == "." {
        return Ok(Some(Vec::new()));
    }
    let mut labels = Vec::new();
    let mut label = Vec::new();
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                if label.is_empty() {
                    return Err(NameError::EmptyLabel(name.to_string()));
                }
                labels.push(std::mem::take(&mut label));
            }
            '\\' => match chars.next() {
                Some(d) if d.is_ascii_digit() => {
                    let mut value = d.to_digit(10).unwrap_or(0);
                    for _ in 0..2 {
                        match chars.next().and_then(|d| d.to_digit(10)) {
                            Some(digit) => value = value * 10 + digit,
                            None => return Err(NameError::BadEscape(name.to_string())),
                        }
                    }
                    label.push(u8::try_from(value).map_err(|_| NameError::BadEscape(name.to_string()))?);
                }
                Some(other) => label.extend_from_slice(other.encode_utf8(&mut [0; 4]).as_bytes()),
                None => return Err(NameError::BadEscape(name.to_string())),
            },
            c => label.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    // A name ending in an unescaped dot is absolute; the dot is not an empty label.
    if !label.is_empty() {
        labels.push(label);
    }
    if let Some(long) = labels.iter().find(|l| l.len() > MAX_LABEL_LEN) {
        return Err(NameError::LabelTooLong(long.len()));
    }
    let wire_len = labels.iter().map(|l| 1 + l.len()).sum::<usize>() + 1;
    if wire_len > MAX_NAME_WIRE_LEN {
        return Err(NameError::TooLong(wire_len));
    }
    Ok(Some(labels))
}

fn write_count_name(out: &mut Vec<u8>, name: &str) -> Result<(), NameError> {
    let Some(labels) = name_labels(name)? else {
        out.extend_from_slice(&[0, 0]);
        return Ok(());
    };
    // name_labels bounds the wire length by 255 and so the label count by 127: both fit a byte.
    let wire_len = labels.iter().map(|l| 1 + l.len()).sum::<usize>() + 1;
    out.push(wire_len as u8);
    out.push(labels.len() as u8);
    for label in &labels {
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
    out.push(0);
    Ok(())
}

fn nanos_since_1601(t: SystemTime) -> i128 {
    let unix = match t.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_nanos() as i128,
        Err(before) => -(before.duration().as_nanos() as i128),
    };
    unix + SECS_1601_TO_1970 * NANOS_PER_SEC
}

fn from_nanos_since_1601(nanos: i128) -> Option<SystemTime> {
    let unix = nanos - SECS_1601_TO_1970 * NANOS_PER_SEC;
    let magnitude = unix.unsigned_abs();
    let secs = u64::try_from(magnitude / NANOS_PER_SEC as u128).ok()?;
    let offset = Duration::new(secs, (magnitude % NANOS_PER_SEC as u128) as u32);
    if unix >= 0 { UNIX_EPOCH.checked_add(offset) } else { UNIX_EPOCH.checked_sub(offset) }
}

/// The aging timestamp for `t`: whole hours since 1601-01-01T00:00Z, rounded down, as Samba
/// computes it (`NTTIME / 10^7 / 3600`; kms-dns-ad.md §3.2). Times before 1601 give 0 and times
/// after the year 491,000 give `u32::MAX`.
pub fn hours_since_1601(t: SystemTime) -> u32 {
    let hours = nanos_since_1601(t).div_euclid(3600 * NANOS_PER_SEC);
    hours.clamp(0, i128::from(u32::MAX)) as u32
}

/// The instant an aging timestamp stands for; `None` only where the platform's `SystemTime`
/// cannot hold it. (0 is 1601-01-01T00:00Z here; whether it means "static" is the record's
/// business, see [`DnsRecord::timestamp_time`].)
pub fn from_hours_since_1601(hours: u32) -> Option<SystemTime> {
    from_nanos_since_1601(i128::from(hours) * 3600 * NANOS_PER_SEC)
}

/// `t` as a FILETIME: 100-ns ticks since 1601-01-01T00:00Z, clamped to the u64 range.
pub fn filetime(t: SystemTime) -> u64 {
    nanos_since_1601(t).div_euclid(100).clamp(0, i128::from(u64::MAX)) as u64
}

/// The instant a FILETIME stands for; `None` where `SystemTime` cannot hold it.
pub fn from_filetime(ticks: u64) -> Option<SystemTime> {
    from_nanos_since_1601(i128::from(ticks) * 100)
}

/// `dNSProperty` Ids kms-dns-ad.md §3.6 lists (MS-DNSP 2.3.2.1.1).
pub const PROPERTY_ZONE_TYPE: u32 = 0x01;
pub const PROPERTY_ALLOW_UPDATE: u32 = 0x02;
pub const PROPERTY_SECURE_TIME: u32 = 0x08;
pub const PROPERTY_NOREFRESH_INTERVAL: u32 = 0x10;
pub const PROPERTY_SCAVENGING_SERVERS: u32 = 0x11;
pub const PROPERTY_AGING_ENABLED_TIME: u32 = 0x12;
pub const PROPERTY_REFRESH_INTERVAL: u32 = 0x20;
pub const PROPERTY_AGING_STATE: u32 = 0x40;

/// DataLength, NameLength, Flag, Version, Id.
const PROPERTY_HEADER_LEN: usize = 20;
/// MS-DNSP 2.3.2.1.1: "Default: 168 hours/7 days" for both intervals.
pub const DEFAULT_INTERVAL_HOURS: u32 = 168;

/// One `dNSProperty` value of a dnsZone (MS-DNSP 2.3.2.1): DataLength, NameLength, Flag,
/// Version, Id (all u32 LE), Data, Name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsProperty {
    pub id: u32,
    /// Empty means "the property's default", whatever Windows left after it (MS-DNSP 2.3.2.1.1).
    pub data: Vec<u8>,
    /// Unused by MS-DNSP ("MUST be ignored"); Windows leaves junk here (Samba's torture test
    /// `dnsp_dnsProperty_deleted_by` shows 0x71c4ee01). Kept so re-encoding is lossless.
    pub name_length: u32,
    /// Must be 0.
    pub flag: u32,
    /// Must be 1.
    pub version: u32,
    /// The bytes after Data. MS-DNSP calls this a 1-byte Name to ignore; Samba models it as a
    /// u32 and the values Windows writes carry 4 bytes there. Kept so re-encoding is lossless.
    pub name: Vec<u8>,
}

impl DnsProperty {
    /// A property as Samba writes one: NameLength 0, Flag 0, Version 1, a zero u32 Name.
    pub fn new(id: u32, data: Vec<u8>) -> DnsProperty {
        DnsProperty { id, data, name_length: 0, flag: 0, version: 1, name: vec![0; 4] }
    }

    pub fn parse(value: &[u8]) -> Result<DnsProperty, DnspError> {
        let header = value.get(..PROPERTY_HEADER_LEN).ok_or(DnspError::ShortProperty(value.len()))?;
        let u32_at = |at: usize| u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
        let available = value.len() - PROPERTY_HEADER_LEN;
        let data_length = usize::try_from(u32_at(0)).unwrap_or(usize::MAX);
        if data_length > available {
            return Err(DnspError::PropertyDataBeyondValue { data_length, available });
        }
        let (data, name) = value[PROPERTY_HEADER_LEN..].split_at(data_length);
        Ok(DnsProperty {
            name_length: u32_at(4),
            flag: u32_at(8),
            version: u32_at(12),
            id: u32_at(16),
            data: data.to_vec(),
            name: name.to_vec(),
        })
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, DnspError> {
        let data_length = u32::try_from(self.data.len()).map_err(|_| DnspError::DataTooLong(self.data.len()))?;
        let mut out = Vec::with_capacity(PROPERTY_HEADER_LEN + self.data.len() + self.name.len());
        for v in [data_length, self.name_length, self.flag, self.version, self.id] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.data);
        out.extend_from_slice(&self.name);
        Ok(out)
    }

    /// The Data as a u32 LE; `None` when it is shorter (an unparsable property).
    fn data_u32(&self) -> Option<u32> {
        self.data.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Which dynamic updates a zone takes (DNS_ZONE_UPDATE, MS-DNSP 2.2.6.1.1; kms-dns-ad.md §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowUpdate {
    /// ZONE_UPDATE_OFF: no dynamic updates; KMS hosts cannot publish at all.
    None,
    /// ZONE_UPDATE_UNSECURE: unsigned updates too, and Samba then checks no ACL at all.
    NonsecureAndSecure,
    /// ZONE_UPDATE_SECURE: only GSS-TSIG updates, checked against the node's ACL.
    SecureOnly,
    Unknown(u8),
}

impl AllowUpdate {
    pub fn from_byte(b: u8) -> AllowUpdate {
        match b {
            0 => AllowUpdate::None,
            1 => AllowUpdate::NonsecureAndSecure,
            2 => AllowUpdate::SecureOnly,
            other => AllowUpdate::Unknown(other),
        }
    }

    pub fn to_byte(self) -> u8 {
        match self {
            AllowUpdate::None => 0,
            AllowUpdate::NonsecureAndSecure => 1,
            AllowUpdate::SecureOnly => 2,
            AllowUpdate::Unknown(b) => b,
        }
    }
}

/// The zone settings the audit needs, read from all `dNSProperty` values of a dnsZone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneSettings {
    /// [`AllowUpdate::None`] when the zone has no such property: MS-DNSP gives no default, and
    /// a new zone starts with updates off.
    pub allow_update: AllowUpdate,
    /// AGING_STATE; scavenging needs it on the zone and on at least one server.
    pub aging: bool,
    pub no_refresh_hours: u32,
    pub refresh_hours: u32,
    /// AGING_ENABLED_TIME: hours since 1601 before which nothing in the zone is scavenged; 0
    /// when unset.
    pub aging_enabled_time: u32,
    /// Values that were not readable, or whose Data did not fit their Id. They are skipped, as
    /// Windows and Samba skip them (kms-dns-ad.md §3.6); the count lets a report mention them.
    pub skipped: usize,
}

impl Default for ZoneSettings {
    fn default() -> ZoneSettings {
        ZoneSettings {
            allow_update: AllowUpdate::None,
            aging: false,
            no_refresh_hours: DEFAULT_INTERVAL_HOURS,
            refresh_hours: DEFAULT_INTERVAL_HOURS,
            aging_enabled_time: 0,
            skipped: 0,
        }
    }
}

impl ZoneSettings {
    /// Reads the settings from every `dNSProperty` value of a zone, in the order AD returns
    /// them. A property with DataLength 0 takes its default (MS-DNSP 2.3.2.1.1); Ids this type
    /// does not track are ignored.
    pub fn from_values<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> ZoneSettings {
        let mut settings = ZoneSettings::default();
        for value in values {
            let applied = DnsProperty::parse(value).ok().is_some_and(|p| settings.apply(&p));
            if !applied {
                settings.skipped += 1;
            }
        }
        settings
    }

    /// Applies one property; false when its Data does not fit its Id.
    fn apply(&mut self, p: &DnsProperty) -> bool {
        let defaults = ZoneSettings::default();
        let is_default = p.data.is_empty();
        match p.id {
            PROPERTY_ALLOW_UPDATE if is_default => self.allow_update = defaults.allow_update,
            // One byte (Samba's enum8bit); a u32 is accepted too, since RPC carries it as a DWORD.
            PROPERTY_ALLOW_UPDATE => match (p.data.len(), p.data_u32()) {
                (1, _) => self.allow_update = AllowUpdate::from_byte(p.data[0]),
                (4, Some(v)) if v <= 0xff => self.allow_update = AllowUpdate::from_byte(v as u8),
                _ => return false,
            },
            PROPERTY_AGING_STATE
            | PROPERTY_NOREFRESH_INTERVAL
            | PROPERTY_REFRESH_INTERVAL
            | PROPERTY_AGING_ENABLED_TIME => {
                let value = if is_default {
                    match p.id {
                        PROPERTY_AGING_STATE => u32::from(defaults.aging),
                        PROPERTY_NOREFRESH_INTERVAL => defaults.no_refresh_hours,
                        PROPERTY_REFRESH_INTERVAL => defaults.refresh_hours,
                        _ => defaults.aging_enabled_time,
                    }
                } else {
                    match p.data_u32() {
                        Some(v) => v,
                        None => return false,
                    }
                };
                match p.id {
                    PROPERTY_AGING_STATE => self.aging = value != 0,
                    PROPERTY_NOREFRESH_INTERVAL => self.no_refresh_hours = value,
                    PROPERTY_REFRESH_INTERVAL => self.refresh_hours = value,
                    _ => self.aging_enabled_time = value,
                }
            }
            _ => {}
        }
        true
    }

    /// The properties that carry these settings, written as Samba writes them.
    pub fn to_properties(&self) -> Vec<DnsProperty> {
        vec![
            DnsProperty::new(PROPERTY_ALLOW_UPDATE, vec![self.allow_update.to_byte()]),
            DnsProperty::new(PROPERTY_AGING_STATE, u32::from(self.aging).to_le_bytes().to_vec()),
            DnsProperty::new(PROPERTY_NOREFRESH_INTERVAL, self.no_refresh_hours.to_le_bytes().to_vec()),
            DnsProperty::new(PROPERTY_REFRESH_INTERVAL, self.refresh_hours.to_le_bytes().to_vec()),
            DnsProperty::new(PROPERTY_AGING_ENABLED_TIME, self.aging_enabled_time.to_le_bytes().to_vec()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use proptest::prelude::*;

    fn b64(s: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD.decode(s.trim()).unwrap()
    }

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace().map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
    }

    fn unix(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// `t` as Python's `datetime.isoformat()` writes a UTC time, which is how
    /// `labs/dnsrecord_decode.py` wrote the decoded samples.
    fn isoformat(t: SystemTime) -> String {
        let d = t.duration_since(UNIX_EPOCH).unwrap();
        let (days, sod) = ((d.as_secs() / 86_400) as i64, d.as_secs() % 86_400);
        // Days to civil date (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms").
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        let micros = d.subsec_micros();
        let frac = if micros == 0 { String::new() } else { format!(".{micros:06}") };
        format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{frac}+00:00", sod / 3600, sod % 3600 / 60, sod % 60)
    }

    /// The fields `labs/dnsrecord_decode.py` prints for a record, in its words.
    fn as_decoder_prints(r: &DnsRecord) -> Vec<(String, String)> {
        let fqdn = |n: &str| format!("{n}.");
        let mut out = vec![
            ("type".to_string(), type_name(r.rr_type)),
            ("version".into(), r.version.to_string()),
            ("rank".into(), format!("{:#x}", r.rank)),
            ("flags".into(), r.flags.to_string()),
            ("serial".into(), r.serial.to_string()),
            ("ttl".into(), r.ttl.to_string()),
            ("timestamp_hours".into(), r.timestamp.to_string()),
            ("timestamp".into(), r.timestamp_time().map(isoformat).unwrap_or("static".into())),
        ];
        let mut add = |k: &str, v: String| out.push((k.to_string(), v));
        match &r.data {
            RecordData::Srv { priority, weight, port, target } => {
                add("priority", priority.to_string());
                add("weight", weight.to_string());
                add("port", port.to_string());
                add("target", fqdn(target));
            }
            RecordData::A(ip) => add("address", ip.to_string()),
            RecordData::Ns(name) => add("nameserver", fqdn(name)),
            RecordData::Soa { serial, refresh, retry, expire, minimum, mname, rname } => {
                for (k, v) in [("soa_serial", serial), ("refresh", refresh), ("retry", retry), ("expire", expire)] {
                    add(k, v.to_string());
                }
                add("minimum", minimum.to_string());
                add("mname", fqdn(mname));
                add("rname", fqdn(rname));
            }
            RecordData::Tombstone { entombed } => add("entombed", isoformat(from_filetime(*entombed).unwrap())),
            other => panic!("the samples hold no {other:?}"),
        }
        out
    }

    /// samples/dnsrecord_samples_decoded.txt: every blob Samba stored in the lab, with what
    /// Samba's and the stdlib decoder made of it.
    #[test]
    fn every_captured_sample_decodes_as_samba_did_and_re_encodes_to_the_same_bytes() {
        let text = include_str!("../../tests/fixtures/ad/dnsrecord_samples_decoded.txt");
        // Each blob sits on a line of its own, followed by its indented "field value" lines.
        let mut samples: Vec<(&str, Vec<(String, String)>)> = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match (line.strip_prefix(' '), samples.last_mut()) {
                (Some(field), Some((_, fields))) => {
                    let (k, v) = field.trim().split_once(' ').unwrap();
                    fields.push((k.to_string(), v.trim().to_string()));
                }
                _ => samples.push((line, Vec::new())),
            }
        }
        for (blob, want) in &samples {
            let bytes = b64(blob);
            let record = DnsRecord::parse(&bytes).unwrap();
            assert_eq!(&as_decoder_prints(&record), want, "{blob}");
            assert_eq!(record.to_bytes().unwrap(), bytes, "{blob}");
        }
        assert_eq!(samples.len(), 6, "SRV static and dynamic, A, SOA, NS, TOMBSTONE");
        assert!(samples.iter().all(|(_, fields)| fields.len() >= 9), "every blob has its decoded fields");
    }

    #[test]
    fn the_dynamic_srv_kms1_registered_is_dated_and_not_static() {
        let bytes = b64("GAAhAAXwAABuAAAAAAAOEAAAAAC39zgAAAAAAAaYEAMEa21zMQRjb3JwBHRlc3QA");
        let record = DnsRecord::parse(&bytes).unwrap();
        let want = DnsRecord::srv(0, 0, 1688, "kms1.corp.test", 3600, 110, 3_733_431);
        assert_eq!(record, want);
        assert!(!record.is_static());
        // 3733431 h after 1601-01-01 is 2026-11-28T15:00Z.
        assert_eq!(record.timestamp_time(), Some(unix(1_795_878_000)));
        assert_eq!(hours_since_1601(unix(1_795_878_000 + 3599)), 3_733_431);
        assert_eq!(want.to_bytes().unwrap(), bytes);
    }

    /// The other blobs of test-labs.md §2.3 (the SRVs KMS2 and KMS3 wrote after the fix, and
    /// kms2's A record).
    #[test]
    fn the_other_lab_blobs_decode_to_what_test_labs_says() {
        for (blob, want) in [
            (
                "GAAhAAXwAAAEAAAAAAADhAAAAAAAAAAAAAAAAAaYEAMEa21zMQRjb3JwBHRlc3QA",
                DnsRecord::srv(0, 0, 1688, "kms1.corp.test", 900, 4, 0),
            ),
            (
                "GAAhAAXwAABuAAAAAAAOEAAAAAC39zgAAAAAAAaYEAMEa21zMgRjb3JwBHRlc3QA",
                DnsRecord::srv(0, 0, 1688, "kms2.corp.test", 3600, 110, 3_733_431),
            ),
            (
                "GAAhAAXwAABuAAAAAAAOEAAAAAC39zgAAAAAAAaYEAMEa21zMwRjb3JwBHRlc3QA",
                DnsRecord::srv(0, 0, 1688, "kms3.corp.test", 3600, 110, 3_733_431),
            ),
            (
                "BAABAAXwAAADAAAAAAADhAAAAAAAAAAAfwAAFg==",
                DnsRecord::new(RecordData::A([127, 0, 0, 22].into()), 900, 3, 0),
            ),
            (
                "EQACAAXwAAABAAAAAAADhAAAAAAAAAAADwMDZGMxBGNvcnAEdGVzdAA=",
                DnsRecord::new(RecordData::Ns("dc1.corp.test".into()), 900, 1, 0),
            ),
        ] {
            let bytes = b64(blob);
            assert_eq!(DnsRecord::parse(&bytes).unwrap(), want, "{blob}");
            assert_eq!(want.to_bytes().unwrap(), bytes, "{blob}");
        }
        let static_srv =
            DnsRecord::parse(&b64("GAAhAAXwAAAEAAAAAAADhAAAAAAAAAAAAAAAAAaYEAMEa21zMQRjb3JwBHRlc3QA")).unwrap();
        assert!(static_srv.is_static());
        assert_eq!(static_srv.timestamp_time(), None);
    }

    /// The worked dumps of kms-dns-ad.md §3.4.
    #[test]
    fn the_reference_worked_dumps_round_trip() {
        let srv = hex("1f 00 21 00 05 f0 00 00 1e 00 00 00 00 00 0e 10
                       00 00 00 00 18 94 38 00 00 00 00 00 06 98 17 04
                       04 6b 6d 73 31 04 63 6f 72 70 07 65 78 61 6d 70
                       6c 65 03 63 6f 6d 00");
        let want = DnsRecord::srv(0, 0, 1688, "kms1.corp.example.com", 3600, 30, 3_707_928);
        assert_eq!(srv.len(), 55);
        assert_eq!(DnsRecord::parse(&srv).unwrap(), want);
        assert_eq!(want.to_bytes().unwrap(), srv);
        assert_eq!(want.timestamp_time(), Some(unix(1_704_067_200)), "2024-01-01T00:00Z");

        let a = hex("04 00 01 00 05 f0 00 00 1e 00 00 00 00 00 04 b0 00 00 00 00 00 00 00 00 0a 00 00 05");
        let want = DnsRecord::new(RecordData::A([10, 0, 0, 5].into()), 1200, 30, 0);
        assert_eq!(DnsRecord::parse(&a).unwrap(), want);
        assert_eq!(want.to_bytes().unwrap(), a);

        let ts = hex("08 00 00 00 05 f0 00 00 1f 00 00 00 00 00 00 00
                      00 00 00 00 00 00 00 00 00 e0 a2 34 2a 42 da 01");
        let record = DnsRecord::parse(&ts).unwrap();
        assert_eq!(record.data, RecordData::Tombstone { entombed: 0x01DA_422A_34A2_E000 });
        assert_eq!(from_filetime(0x01DA_422A_34A2_E000), Some(unix(1_704_715_200)), "2024-01-08T12:00Z");
        assert_eq!(record.to_bytes().unwrap(), ts);
    }

    #[test]
    fn a_tombstone_is_written_as_samba_writes_it() {
        let sample = b64("CAAAAAUAAABuAAAAAAAAAAAAAAAAAAAABIYnqVB/3QE=");
        let entombed = from_filetime(134_403_548_303_033_860).unwrap();
        assert_eq!(DnsRecord::tombstone(entombed, 110).to_bytes().unwrap(), sample);
    }

    /// kms-dns-ad.md §3.2: a tool wrote a 4-byte flags value 0x60000000 over Version, Rank and
    /// Flags; DNS servers then ignore the value, and the audit has to be able to say so.
    #[test]
    fn a_version_other_than_5_still_parses() {
        let mut bytes = b64("GAAhAAXwAABuAAAAAAAOEAAAAAC39zgAAAAAAAaYEAMEa21zMQRjb3JwBHRlc3QA");
        bytes[4..8].copy_from_slice(&0x6000_0000u32.to_le_bytes());
        let record = DnsRecord::parse(&bytes).unwrap();
        assert_eq!((record.version, record.rank, record.flags), (0, 0, 0x6000));
        assert!(matches!(record.data, RecordData::Srv { port: 1688, .. }));
        assert_eq!(record.to_bytes().unwrap(), bytes);

        // With data that does not fit its type the value is still read, as opaque data.
        let mut odd = hex("03 00 01 00 00 00 00 00 01 00 00 00 00 00 03 84 00 00 00 00 00 00 00 00 0a 00 00");
        let record = DnsRecord::parse(&odd).unwrap();
        assert_eq!(record.data, RecordData::Unknown { rr_type: TYPE_A, bytes: vec![10, 0, 0] });
        assert_eq!(record.to_bytes().unwrap(), odd);
        odd[4] = VERSION;
        assert_eq!(DnsRecord::parse(&odd), Err(DnspError::DataLength { rr_type: TYPE_A, len: 3, expected: 4 }));
    }

    #[test]
    fn data_length_is_trusted_up_to_the_end_of_the_value_and_no_further() {
        let mut bytes = b64("BAABAAXwAAACAAAAAAADhAAAAAAAAAAAfwAAFQ==");
        let clean = DnsRecord::parse(&bytes).unwrap();
        bytes.extend_from_slice(&[0xde, 0xad]);
        assert_eq!(DnsRecord::parse(&bytes).unwrap(), clean, "trailing bytes are ignored");
        bytes.truncate(27);
        assert_eq!(DnsRecord::parse(&bytes), Err(DnspError::RecordDataBeyondValue { data_length: 4, available: 3 }));
        assert_eq!(DnsRecord::parse(&bytes[..23]), Err(DnspError::ShortRecord(23)));
        let mut srv = b64("GAAhAAXwAAAEAAAAAAADhAAAAAAAAAAAAAAAAAaYEAMEa21zMQRjb3JwBHRlc3QA");
        srv[0] += 1;
        srv.push(0);
        assert_eq!(DnsRecord::parse(&srv), Err(DnspError::TrailingData { rr_type: TYPE_SRV, extra: 1 }));
    }

    fn ns(name_bytes: &[u8]) -> Vec<u8> {
        let mut v = hex("00 00 02 00 05 f0 00 00 01 00 00 00 00 00 03 84 00 00 00 00 00 00 00 00");
        v[..2].copy_from_slice(&(name_bytes.len() as u16).to_le_bytes());
        v.extend_from_slice(name_bytes);
        v
    }

    fn ns_name(name_bytes: &[u8]) -> Result<String, DnspError> {
        DnsRecord::parse(&ns(name_bytes)).map(|r| match r.data {
            RecordData::Ns(name) => name,
            other => panic!("{other:?}"),
        })
    }

    /// DNS_COUNT_NAME per MS-DNSP 2.2.2.2.2 and Samba's ndr_dnsp.c.
    #[test]
    fn count_names_follow_the_spec_and_samba() {
        // Length counts RawName with its final zero; LabelCount counts labels.
        assert_eq!(ns_name(&hex("0d 02 07 65 78 61 6d 70 6c 65 03 63 6f 6d 00")), Ok("example.com".into()));
        // The empty string of the spec, and the root as Windows writes an MX of ".".
        assert_eq!(ns_name(&[0, 0]), Ok(String::new()));
        assert_eq!(ns_name(&[1, 0, 0]), Ok(".".into()));
        for name in ["", "."] {
            let r = DnsRecord::new(RecordData::Ns(name.into()), 900, 1, 0);
            assert_eq!(DnsRecord::parse(&r.to_bytes().unwrap()).unwrap(), r);
        }
        // Samba skips pad bytes between the zero and the end of Length.
        assert_eq!(ns_name(&hex("05 01 01 61 00 ff ff")), Ok("a".into()));
        assert_eq!(ns_name(&hex("02 01 01 61 00")), Err(NameError::Overrun(1).into()));
        assert_eq!(ns_name(&hex("05 02 01 61 00 00 00")), Err(NameError::LabelCount { count: 2, index: 1 }.into()));
        assert_eq!(ns_name(&hex("04 01 01 61 62 00")), Err(NameError::NotTerminated(1).into()));
        assert_eq!(ns_name(&hex("04 01 01 61")), Err(NameError::Truncated.into()));
        let mut long = vec![66, 1, 64];
        long.extend_from_slice(&[b'a'; 64]);
        long.push(0);
        assert_eq!(ns_name(&long), Err(NameError::LabelTooLong(64).into()));
    }

    #[test]
    fn names_that_have_no_encoding_are_refused_when_encoding() {
        let encode = |name: &str| DnsRecord::new(RecordData::Cname(name.into()), 1, 1, 0).to_bytes();
        assert_eq!(encode(&"a".repeat(64)), Err(NameError::LabelTooLong(64).into()));
        let long = ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(62)].join(".");
        assert_eq!(encode(&long), Err(NameError::TooLong(256).into()));
        assert!(encode(&long[1..]).is_ok(), "255 bytes on the wire is the limit, not over it");
        assert_eq!(encode("a..b"), Err(NameError::EmptyLabel("a..b".into()).into()));
        assert_eq!(encode(".a"), Err(NameError::EmptyLabel(".a".into()).into()));
        assert_eq!(encode("a\\"), Err(NameError::BadEscape("a\\".into()).into()));
        assert_eq!(encode("a\\256"), Err(NameError::BadEscape("a\\256".into()).into()));
        // A trailing dot is the absolute form of the same name.
        assert_eq!(encode("kms1.corp.test."), encode("kms1.corp.test"));
    }

    #[test]
    fn label_bytes_that_text_cannot_hold_are_escaped_and_come_back() {
        let raw = hex("0b 02 03 61 2e 62 05 20 ff 5c c3 a9 00");
        assert_eq!(ns_name(&raw), Ok("a\\.b.\\032\\255\\\\\\195\\169".into()));
        let utf8 = hex("05 01 03 c3 a9 7f 00");
        assert_eq!(ns_name(&utf8), Ok("é\\127".into()));
        for bytes in [raw, utf8] {
            let record = DnsRecord::parse(&ns(&bytes)).unwrap();
            assert_eq!(record.to_bytes().unwrap(), ns(&bytes));
        }
    }

    #[test]
    fn the_aging_clock_counts_hours_from_1601() {
        assert_eq!(hours_since_1601(unix(0)), 3_234_576);
        assert_eq!(hours_since_1601(unix(1_704_067_200)), 3_707_928);
        assert_eq!(from_hours_since_1601(3_707_928), Some(unix(1_704_067_200)));
        assert_eq!(hours_since_1601(UNIX_EPOCH - Duration::from_secs(400 * 365 * 86_400)), 0, "before 1601");
        assert_eq!(filetime(unix(1_704_715_200)), 0x01DA_422A_34A2_E000);
        assert_eq!(filetime(UNIX_EPOCH), 116_444_736_000_000_000);
        assert_eq!(from_filetime(0), UNIX_EPOCH.checked_sub(Duration::from_secs(11_644_473_600)));
    }

    /// Samba's torture test of dnsProperty (source4/torture/ndr/dnsp.c): a master-servers
    /// array as Samba writes it, and a deleted-from property Windows wrote with junk in
    /// NameLength and Name.
    #[test]
    fn captured_properties_round_trip_byte_for_byte() {
        let masters = b64("DAAAAAAAAAAAAAAAAQAAAIEAAAACAAAArB9jIawfYywAAAAA");
        let p = DnsProperty::parse(&masters).unwrap();
        assert_eq!((p.id, p.data.len(), p.name_length, p.flag, p.version), (0x81, 12, 0, 0, 1));
        assert_eq!(p, DnsProperty::new(0x81, hex("02 00 00 00 ac 1f 63 21 ac 1f 63 2c")));
        assert_eq!(p.to_bytes().unwrap(), masters);

        let deleted_by = b64("JgAAAAHuxHEAAAAAAQAAAIAAAAB3ADIAawAzAC0AMQA5ADEALgB3ADIAawAzAC4AYgBhAHMAZQAAAMRx7PM=");
        let p = DnsProperty::parse(&deleted_by).unwrap();
        assert_eq!((p.id, p.data.len(), p.name_length), (0x80, 38, 0x71c4_ee01));
        assert_eq!(p.to_bytes().unwrap(), deleted_by);

        // Neither is a setting the audit tracks: both are read and ignored, not skipped.
        let settings = ZoneSettings::from_values([masters.as_slice(), deleted_by.as_slice()]);
        assert_eq!(settings, ZoneSettings::default());
        assert_eq!(DnsProperty::parse(&masters[..19]), Err(DnspError::ShortProperty(19)));
        assert_eq!(
            DnsProperty::parse(&masters[..31]),
            Err(DnspError::PropertyDataBeyondValue { data_length: 12, available: 11 })
        );
    }

    #[test]
    fn zone_settings_honour_defaults_and_skip_what_they_cannot_read() {
        let value = |id: u32, data: &[u8]| DnsProperty::new(id, data.to_vec()).to_bytes().unwrap();
        let secure = value(PROPERTY_ALLOW_UPDATE, &[2]);
        let aging_on = value(PROPERTY_AGING_STATE, &1u32.to_le_bytes());
        let no_refresh_24 = value(PROPERTY_NOREFRESH_INTERVAL, &24u32.to_le_bytes());
        let refresh_72 = value(PROPERTY_REFRESH_INTERVAL, &72u32.to_le_bytes());
        let settings = ZoneSettings::from_values([&secure[..], &aging_on, &no_refresh_24, &refresh_72]);
        assert_eq!(settings.allow_update, AllowUpdate::SecureOnly);
        assert!(settings.aging);
        assert_eq!((settings.no_refresh_hours, settings.refresh_hours, settings.skipped), (24, 72, 0));

        // DataLength 0 means the default, whatever was set before or sits in the Data field.
        let mut reset = value(PROPERTY_NOREFRESH_INTERVAL, &24u32.to_le_bytes());
        reset[..4].copy_from_slice(&0u32.to_le_bytes());
        let settings = ZoneSettings::from_values([&no_refresh_24[..], &reset]);
        assert_eq!(settings.no_refresh_hours, DEFAULT_INTERVAL_HOURS);

        let nonsecure_as_dword = value(PROPERTY_ALLOW_UPDATE, &1u32.to_le_bytes());
        let too_short = value(PROPERTY_REFRESH_INTERVAL, &[1, 0]);
        let settings = ZoneSettings::from_values([&nonsecure_as_dword[..], &too_short, &[0u8; 7][..]]);
        assert_eq!(settings.allow_update, AllowUpdate::NonsecureAndSecure);
        assert_eq!((settings.refresh_hours, settings.skipped), (DEFAULT_INTERVAL_HOURS, 2));
        assert_eq!(
            ZoneSettings::from_values([&value(PROPERTY_ALLOW_UPDATE, &[7])[..]]).allow_update,
            AllowUpdate::Unknown(7)
        );
    }

    fn label() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(b'a'..=b'z', 1..=63),
            proptest::collection::vec(any::<u8>(), 1..=63),
            "[_a-z0-9é-]{1,20}".prop_map(|s| s.into_bytes()).prop_filter("DNS label", |l| l.len() <= 63),
        ]
    }

    fn labels_text(labels: &[Vec<u8>]) -> String {
        let mut text = String::new();
        for (i, l) in labels.iter().enumerate() {
            if i > 0 {
                text.push('.');
            }
            push_label_text(&mut text, l);
        }
        text
    }

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            1 => Just(String::new()),
            1 => Just(".".to_string()),
            8 => proptest::collection::vec(label(), 1..=3).prop_map(|ls| labels_text(&ls)),
        ]
    }

    fn record_data() -> impl Strategy<Value = RecordData> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(|b| RecordData::A(b.into())),
            any::<[u8; 16]>().prop_map(|b| RecordData::Aaaa(b.into())),
            (any::<u16>(), any::<u16>(), any::<u16>(), name())
                .prop_map(|(priority, weight, port, target)| RecordData::Srv { priority, weight, port, target }),
            name().prop_map(RecordData::Ns),
            name().prop_map(RecordData::Cname),
            name().prop_map(RecordData::Ptr),
            (any::<[u32; 5]>(), name(), name()).prop_map(|(v, mname, rname)| RecordData::Soa {
                serial: v[0],
                refresh: v[1],
                retry: v[2],
                expire: v[3],
                minimum: v[4],
                mname,
                rname
            }),
            any::<u64>().prop_map(|entombed| RecordData::Tombstone { entombed }),
            (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..64))
                .prop_filter("a type the parser reads as itself", |(t, _)| {
                    ![TYPE_TOMBSTONE, TYPE_A, TYPE_NS, TYPE_CNAME, TYPE_SOA, TYPE_PTR, TYPE_AAAA, TYPE_SRV].contains(t)
                })
                .prop_map(|(rr_type, bytes)| RecordData::Unknown { rr_type, bytes }),
        ]
    }

    proptest! {
        #[test]
        fn no_bytes_make_the_parsers_panic(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
            if let Ok(record) = DnsRecord::parse(&bytes) {
                // Whatever parses encodes, and reads back the same.
                let again = record.to_bytes().unwrap();
                prop_assert_eq!(DnsRecord::parse(&again).unwrap(), record);
            }
            if let Ok(property) = DnsProperty::parse(&bytes) {
                prop_assert_eq!(property.to_bytes().unwrap(), bytes.clone());
            }
            let _ = ZoneSettings::from_values([bytes.as_slice()]);
        }

        #[test]
        fn mangled_samples_never_panic(at in 0usize..56, val in any::<u8>(), cut in 0usize..57, which in 0usize..3) {
            let mut bytes = b64([
                "GAAhAAXwAABuAAAAAAAOEAAAAAC39zgAAAAAAAaYEAMEa21zMQRjb3JwBHRlc3QA",
                "PQAGAAXwAAAEAAAAAAAOEAAAAAAAAAAAAAAABAAAA4QAAAJYAAFRgAAADhAPAwNkYzEEY29ycAR0ZXN0ABYDCmhvc3RtYXN0ZXIEY29ycAR0ZXN0AA==",
                "CAAAAAUAAABuAAAAAAAAAAAAAAAAAAAABIYnqVB/3QE=",
            ][which]);
            let at = at % bytes.len();
            bytes[at] = val;
            bytes.truncate(cut.max(1));
            if let Ok(record) = DnsRecord::parse(&bytes) {
                prop_assert!(record.to_bytes().is_ok());
            }
        }

        #[test]
        fn valid_records_round_trip(
            data in record_data(),
            (version, rank, flags) in (prop_oneof![Just(VERSION), any::<u8>()], any::<u8>(), any::<u16>()),
            (serial, ttl, timestamp) in any::<(u32, u32, u32)>(),
        ) {
            let record = DnsRecord { rr_type: data.rr_type(), version, rank, flags, serial, ttl, timestamp, data };
            let bytes = record.to_bytes().unwrap();
            prop_assert_eq!(DnsRecord::parse(&bytes).unwrap(), record);
        }

        #[test]
        fn label_text_comes_back_as_the_same_bytes(labels in proptest::collection::vec(label(), 1..=3)) {
            prop_assert_eq!(name_labels(&labels_text(&labels)).unwrap(), Some(labels));
        }

        #[test]
        fn zone_settings_round_trip(
            allow in any::<u8>(), aging in any::<bool>(), hours in any::<(u32, u32, u32)>(),
        ) {
            let settings = ZoneSettings {
                allow_update: AllowUpdate::from_byte(allow),
                aging,
                no_refresh_hours: hours.0,
                refresh_hours: hours.1,
                aging_enabled_time: hours.2,
                skipped: 0,
            };
            let values: Vec<Vec<u8>> = settings.to_properties().iter().map(|p| p.to_bytes().unwrap()).collect();
            prop_assert_eq!(ZoneSettings::from_values(values.iter().map(Vec::as_slice)), settings);
        }

        #[test]
        fn aging_hours_convert_both_ways(hours in any::<u32>()) {
            prop_assert_eq!(hours_since_1601(from_hours_since_1601(hours).unwrap()), hours);
        }
    }
}
