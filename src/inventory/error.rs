//! Problems in a config file, each at its line, column and dotted key.

use std::fmt;
use std::path::PathBuf;

/// A config file that cannot be used, with every problem found in it.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub path: PathBuf,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", self.path.display())?;
            if p.line > 0 {
                write!(f, ":{}:{}", p.line, p.column)?;
            }
            if !p.key.is_empty() {
                write!(f, ": {}", p.key)?;
            }
            write!(f, ": {}", p.message)?;
        }
        Ok(())
    }
}

/// One problem in a config file, at a 1-based line and column (0 when it has no position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    pub key: String,
    pub message: String,
}

impl Problem {
    pub(super) fn at(text: &str, offset: usize, key: String, message: String) -> Problem {
        let (line, column) = line_column(text, offset);
        Problem { line, column, key, message }
    }
}

/// The most dotted parts a key may have before the `toml` crate gives up ("recursion limit").
pub(super) const TOML_KEY_LIMIT: usize = 80;

/// The offset of the first line whose key (or table header) has at least [`TOML_KEY_LIMIT`]
/// parts. Quoted parts holding dots are over-counted: this only places an error the parser
/// already reported.
pub(super) fn too_deep_key(text: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        let key = match t.strip_prefix('[') {
            Some(header) => header.split(']').next().unwrap_or(""),
            None => t.split('=').next().unwrap_or(""),
        };
        if !t.starts_with('#') && key.split('.').count() >= TOML_KEY_LIMIT {
            return Some(offset + (line.len() - t.len()));
        }
        offset += line.len();
    }
    None
}

/// A message's first line, cut to a length a terminal shows: a parser may echo a huge key.
pub(super) fn first_line(s: &str) -> String {
    shorten(s.lines().next().unwrap_or("").trim())
}

pub(super) fn shorten(s: &str) -> String {
    const MAX: usize = 200;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}… ({} more bytes)", &s[..cut], s.len() - cut),
        None => s.to_string(),
    }
}

pub(super) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, column)
}

/// The dotted key (`host[2].port`) at a byte offset, for errors the TOML parser reports with a
/// position but no key: the key on that line, under the nearest table header above it.
pub(super) fn key_path_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or("");
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line = text[line_start..].lines().next().unwrap_or("");
    let mut table = String::new();
    let mut counts: Vec<(String, usize)> = Vec::new();
    for l in text[..line_start].lines() {
        let t = l.trim();
        if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim().to_string();
            let n = match counts.iter_mut().find(|(k, _)| *k == name) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    counts.push((name.clone(), 0));
                    0
                }
            };
            table = format!("{name}[{n}]");
        } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            table = name.trim().to_string();
        }
    }
    let key = match line.split_once('=') {
        Some((k, _)) if !line.trim_start().starts_with('[') => k.trim().trim_matches('"').to_string(),
        _ => String::new(),
    };
    shorten(&match (table.is_empty(), key.is_empty()) {
        (true, _) => key,
        (false, true) => table,
        (false, false) => format!("{table}.{key}"),
    })
}
