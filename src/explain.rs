//! `kmsdns explain CODE`: an activation error code with a DNS or KMS-host cause, mapped to
//! what kmsdns checks. The table is one data file, `src/explain/codes.toml`, each entry with
//! its source; a code not in it is said to be none kmsdns can check, never guessed at.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

const TABLE: &str = include_str!("explain/codes.toml");

/// One error code of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// As Windows shows it: `0x8007232B`.
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The text Microsoft's reference gives.
    pub message: String,
    pub meaning: String,
    /// kmsdns finding codes that detect its cause.
    pub findings: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_check: Option<String>,
    pub next: Vec<String>,
    pub source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    code: Vec<Entry>,
}

/// Every entry, in the file's order.
pub fn table() -> &'static [Entry] {
    static PARSED: OnceLock<Vec<Entry>> = OnceLock::new();
    // The file is compiled in, and the tests below parse it: it cannot fail at run time.
    PARSED.get_or_init(|| toml::from_str::<Table>(TABLE).map(|t| t.code).unwrap_or_default())
}

/// An error code as an admin may copy it: `0x8007232B`, `8007232b`, or in decimal as some
/// logs print it, signed (`-2147024597`) or not.
pub fn parse_code(text: &str) -> Result<u32, String> {
    let t = text.trim();
    let bad = || format!("'{text}' is not an error code (write it as 0x8007232B)");
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return u32::from_str_radix(hex, 16).map_err(|_| bad());
    }
    if t.len() == 8 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return u32::from_str_radix(t, 16).map_err(|_| bad());
    }
    if let Some(neg) = t.strip_prefix('-') {
        let n = i64::from(neg.parse::<u32>().map_err(|_| bad())?);
        return i32::try_from(-n).map(|v| v as u32).map_err(|_| bad());
    }
    t.parse::<u32>().map_err(|_| bad())
}

/// The entry for a code, if the table has one.
pub fn lookup(code: u32) -> Option<&'static Entry> {
    table().iter().find(|e| parse_code(&e.code) == Ok(code))
}

/// What `kmsdns explain` answers, for JSON.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Explained {
    Known {
        entry: Entry,
    },
    /// Not in the table: not a DNS or KMS-host cause that kmsdns can check.
    Unknown {
        code: String,
        message: String,
    },
}

/// `kmsdns explain CODE`: the entry, or the plain statement that kmsdns cannot check it.
pub fn explain(code: u32) -> Explained {
    match lookup(code) {
        Some(e) => Explained::Known { entry: e.clone() },
        None => {
            let code = format!("0x{code:08X}");
            let message = format!(
                "{code} is not a DNS/KMS-host cause that kmsdns can check; `slui.exe 0x2a {code}` on Windows shows its text, and `kmsdns explain` lists the codes kmsdns knows"
            );
            Explained::Unknown { code, message }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Code;

    #[test]
    fn the_table_parses_and_every_code_is_unique_and_sourced() {
        let parsed: Table = toml::from_str(TABLE).expect("src/explain/codes.toml parses");
        assert_eq!(parsed.code.len(), table().len());
        assert!(table().len() >= 6);
        let mut seen = std::collections::BTreeSet::new();
        for e in table() {
            let n = parse_code(&e.code).unwrap_or_else(|err| panic!("{}: {err}", e.code));
            assert_eq!(e.code, format!("0x{n:08X}"), "write codes as 0x and 8 upper-case digits");
            assert!(seen.insert(n), "{} is in the table twice", e.code);
            assert!(
                e.source.starts_with("Microsoft, ") && e.source.contains("https://learn.microsoft.com/"),
                "{}",
                e.code
            );
            assert!(!e.next.is_empty() && !e.meaning.is_empty() && !e.message.is_empty(), "{}", e.code);
        }
        for code in ["0x8007232B", "0x8007232A", "0x8007267C", "0x800706BA", "0xC004F074", "0xC004F038"] {
            assert!(lookup(parse_code(code).unwrap()).is_some(), "{code} is missing");
        }
    }

    #[test]
    fn every_finding_named_is_a_real_finding_code() {
        for e in table() {
            for f in &e.findings {
                let code: Code = serde_json::from_value(serde_json::Value::String(f.clone()))
                    .unwrap_or_else(|_| panic!("{}: '{f}' is not a kmsdns finding code", e.code));
                assert_eq!(code.as_str(), f, "{}", e.code);
            }
        }
    }

    #[test]
    fn the_threshold_is_25_for_clients_and_5_for_servers() {
        let e = lookup(0xC004F038).unwrap();
        assert!(
            e.meaning.contains("25 for client editions") && e.meaning.contains("5 for server editions"),
            "{}",
            e.meaning
        );
    }

    #[test]
    fn codes_are_read_as_admins_copy_them() {
        for text in ["0x8007232B", "0x8007232b", "0X8007232B", "8007232B", " 8007232b ", "-2147015893", "2147951403"] {
            assert_eq!(parse_code(text), Ok(0x8007_232B), "{text}");
        }
        assert!(parse_code("DNS").is_err());
        assert!(parse_code("0x").is_err());
        assert!(parse_code("-0x1").is_err());
    }

    #[test]
    fn an_unknown_code_is_not_guessed_at() {
        match explain(0x8007_0005) {
            Explained::Unknown { code, message } => {
                assert_eq!(code, "0x80070005");
                assert!(message.contains("not a DNS/KMS-host cause that kmsdns can check"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(explain(0x8007_232B), Explained::Known { .. }));
    }
}
