//! TSIG secrets: read from their files only when an update needs them, refused when other
//! users can read them, and never shown.
//!
//! A secret file holds either the base64 secret alone, or a BIND key statement as
//! `tsig-keygen` writes it: `key "name" { algorithm hmac-sha256; secret "..."; };`.
//! Like ssh with a private key, kmsdns refuses a file that group or others may read.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;

use crate::inventory::{KeySpec, TsigAlgorithmName};
use crate::name::DnsName;

/// A loaded key. Its `Debug` shows the name and algorithm, never the secret.
#[derive(Clone)]
pub struct TsigKey {
    pub name: DnsName,
    pub algorithm: TsigAlgorithmName,
    secret: Vec<u8>,
}

impl fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TsigKey({} {}, secret hidden)", self.name, self.algorithm.as_str())
    }
}

/// Why a secret file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("cannot read {path}: {source}")]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error(
        "{path} is readable by group or others (mode {mode:04o}); kmsdns refuses such a secret: `chmod 600 {path}` (or 400)"
    )]
    Permissions { path: PathBuf, mode: u32 },
}

/// Reads a file that holds a secret, refusing it when group or others may read it, as ssh
/// refuses such a private key.
pub fn read_secret_file(path: &Path) -> Result<String, SecretFileError> {
    let unreadable = |source| SecretFileError::Unreadable { path: path.to_path_buf(), source };
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretFileError::Permissions { path: path.to_path_buf(), mode });
    }
    std::fs::read_to_string(path).map_err(unreadable)
}

/// Why a key cannot be used. No variant carries any part of the file's contents.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key '{key}': {source}")]
    File { key: DnsName, source: SecretFileError },
    #[error("key '{key}': {path}: {why}")]
    Format { key: DnsName, path: PathBuf, why: String },
}

impl TsigKey {
    /// A key from its parts (the demo and tests make their own secrets).
    pub fn new(name: DnsName, algorithm: TsigAlgorithmName, secret: Vec<u8>) -> TsigKey {
        TsigKey { name, algorithm, secret }
    }

    /// Reads the secret file of `spec`.
    pub fn load(spec: &KeySpec) -> Result<TsigKey, KeyError> {
        let path = &spec.secret_file;
        let key = || spec.name.clone();
        let text = read_secret_file(path).map_err(|source| KeyError::File { key: key(), source })?;
        let format = |why: String| KeyError::Format { key: key(), path: path.clone(), why };
        let secret_b64 = parse_secret_file(&text, &spec.name, spec.algorithm).map_err(format)?;
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret_b64.as_bytes())
            .map_err(|_| format("the secret is not valid base64".into()))?;
        if secret.is_empty() {
            return Err(format("the secret is empty".into()));
        }
        Ok(TsigKey { name: spec.name.clone(), algorithm: spec.algorithm, secret })
    }

    /// The signer hickory uses; fudge 300 s, as BIND and Windows use.
    pub fn signer(&self) -> Result<hickory_proto::rr::TSigner, String> {
        use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
        let algorithm = match self.algorithm {
            TsigAlgorithmName::HmacSha256 => TsigAlgorithm::HmacSha256,
            TsigAlgorithmName::HmacSha384 => TsigAlgorithm::HmacSha384,
            TsigAlgorithmName::HmacSha512 => TsigAlgorithm::HmacSha512,
        };
        hickory_proto::rr::TSigner::new(self.secret.clone(), algorithm, self.name.to_hickory(), 300)
            .map_err(|e| format!("key '{}': {e}", self.name))
    }
}

/// The base64 text of the secret, from a bare secret or a BIND key statement for `name`.
fn parse_secret_file(text: &str, name: &DnsName, algorithm: TsigAlgorithmName) -> Result<String, String> {
    let tokens = tokenize(text);
    if tokens.first().map(String::as_str) != Some("key") {
        return match tokens.as_slice() {
            [bare] if !bare.contains(['{', '}', ';']) => Ok(bare.clone()),
            _ => Err("expected a base64 secret or a BIND key statement".into()),
        };
    }
    // key <name> { algorithm <alg>; secret <secret>; }; ... (named.conf grammar)
    let mut found = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i] != "key" || tokens.get(i + 2).map(String::as_str) != Some("{") {
            i += 1;
            continue;
        }
        let key_name = tokens[i + 1].clone();
        let (mut alg, mut secret) = (None, None);
        i += 3;
        while i < tokens.len() && tokens[i] != "}" {
            match (tokens[i].as_str(), tokens.get(i + 1)) {
                ("algorithm", Some(a)) => alg = Some(a.to_ascii_lowercase()),
                ("secret", Some(s)) => secret = Some(s.clone()),
                _ => {}
            }
            i += 1;
        }
        found.push((key_name, alg, secret));
    }
    let wanted = found.iter().find(|(n, _, _)| DnsName::parse(n).ok().as_ref() == Some(name));
    let Some((_, alg, secret)) = wanted else {
        let names: Vec<&str> = found.iter().map(|(n, _, _)| n.as_str()).collect();
        return Err(format!("the file holds no key named '{name}' (it has: {})", names.join(", ")));
    };
    if let Some(a) = alg
        && a != algorithm.as_str()
    {
        return Err(format!("the file says algorithm {a}, the inventory says {}", algorithm.as_str()));
    }
    secret.clone().ok_or_else(|| "the key statement has no secret".into())
}

/// Words, quoted strings (quotes removed) and the punctuation `{ } ;` of a BIND config text,
/// without comments (`#`, `//`, `/* */`).
fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '#' => while chars.next_if(|c| *c != '\n').is_some() {},
            '/' if chars.peek() == Some(&'/') => while chars.next_if(|c| *c != '\n').is_some() {},
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
            }
            '{' | '}' | ';' => tokens.push(c.to_string()),
            '"' => {
                let mut t = String::new();
                for c in chars.by_ref() {
                    if c == '"' {
                        break;
                    }
                    t.push(c);
                }
                tokens.push(t);
            }
            c => {
                let mut t = c.to_string();
                while let Some(c) = chars.next_if(|c| !c.is_whitespace() && !matches!(c, '{' | '}' | ';' | '"')) {
                    t.push(c);
                }
                tokens.push(t);
            }
        }
    }
    tokens
}

/// Checks that a key can be loaded, for `kmsdns check-config`.
pub fn check(spec: &KeySpec) -> Result<(), KeyError> {
    TsigKey::load(spec).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const SECRET: &str = "c2VjcmV0LWJ5dGVzLWZvci10ZXN0aW5nLW9ubHktMTIzNDU2Nzg5MA==";

    fn spec(dir: &Path, contents: &str, mode: u32) -> KeySpec {
        let path = dir.join("k.key");
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(contents.as_bytes()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        KeySpec { name: DnsName::parse("kmsdns").unwrap(), algorithm: TsigAlgorithmName::HmacSha256, secret_file: path }
    }

    #[test]
    fn bare_and_bind_secrets_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let bare = TsigKey::load(&spec(dir.path(), &format!("{SECRET}\n"), 0o600)).unwrap();
        let bind = format!(
            "# made by tsig-keygen\nkey \"other\" {{ secret \"AAAA\"; }};\nkey \"kmsdns\" {{\n\talgorithm hmac-sha256; // sha-2\n\tsecret \"{SECRET}\";\n}};\n"
        );
        let from_bind = TsigKey::load(&spec(dir.path(), &bind, 0o400)).unwrap();
        assert_eq!(bare.secret, from_bind.secret);
        assert_eq!(bare.secret, b"secret-bytes-for-testing-only-1234567890");
    }

    #[test]
    fn a_secret_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = TsigKey::load(&spec(dir.path(), SECRET, 0o644)).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("readable by group or others (mode 0644)") && text.contains("chmod 600"), "{text}");
    }

    #[test]
    fn errors_and_debug_never_show_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let wrong_name = format!("key \"other\" {{ algorithm hmac-sha256; secret \"{SECRET}\"; }};");
        let wrong_alg = format!("key \"kmsdns\" {{ algorithm hmac-sha512; secret \"{SECRET}\"; }};");
        for (text, want) in [
            (wrong_name.as_str(), "no key named 'kmsdns' (it has: other)"),
            (wrong_alg.as_str(), "the file says algorithm hmac-sha512"),
            ("key \"keykey\" { secret \"x\"; };", "no key named 'kmsdns' (it has: keykey)"),
            ("not base64 at all!", "expected a base64 secret"),
            ("%%%%", "not valid base64"),
        ] {
            let e = TsigKey::load(&spec(dir.path(), text, 0o600)).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
            assert!(!e.contains(SECRET) && !e.contains("secret-bytes"), "{e}");
        }
        let k = TsigKey::load(&spec(dir.path(), SECRET, 0o600)).unwrap();
        let debug = format!("{k:?}");
        assert!(
            !debug.contains(SECRET) && !debug.contains("secret-bytes") && debug.contains("secret hidden"),
            "{debug}"
        );
        assert!(k.signer().is_ok());
    }

    #[test]
    fn a_missing_file_names_the_key_and_path() {
        let s = KeySpec {
            name: DnsName::parse("kmsdns").unwrap(),
            algorithm: TsigAlgorithmName::HmacSha256,
            secret_file: "/nonexistent/k.key".into(),
        };
        let e = TsigKey::load(&s).unwrap_err().to_string();
        assert!(e.starts_with("key 'kmsdns': cannot read /nonexistent/k.key"), "{e}");
    }
}
