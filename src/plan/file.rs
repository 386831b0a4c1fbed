//! The plan file: what `kmsdns plan --out` writes for review and `kmsdns apply` reads back.
//!
//! The file carries two SHA-256 digests. `observation` is the fingerprint of what the plan was
//! made from: `apply` refuses when the servers and hosts answer differently now. `digest`
//! covers the file's own contents (every field but itself, as canonical JSON): `apply`
//! refuses a file that was edited by hand or truncated after it was written. Neither digest
//! makes the plan trusted: `apply` still runs every rail again ([`super::recheck`]).

use serde::{Deserialize, Serialize};

use crate::audit::Finding;
use crate::model::Observation;
use crate::plan::ZonePlan;

/// A plan as `kmsdns plan --out` writes it and `kmsdns apply` reads it (schema 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanFile {
    pub schema: u32,
    pub generated: String,
    /// The fingerprint of the observation the plan was made from ([`fingerprint`]).
    pub observation: String,
    pub findings: Vec<Finding>,
    pub zones: Vec<ZonePlan>,
    /// SHA-256 of every other field as canonical JSON ([`PlanFile::seal`]); `None` until
    /// sealed.
    #[serde(default)]
    pub digest: Option<String>,
}

/// A value could not be serialised to be digested.
#[derive(Debug, thiserror::Error)]
#[error("cannot serialise {what} to digest it: {source}")]
pub struct DigestError {
    what: &'static str,
    source: serde_json::Error,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    #[error("not a kmsdns plan: {0}; the file may be truncated: make a new plan (`kmsdns plan --out FILE`)")]
    Parse(serde_json::Error),
    #[error("plan schema {found} is not one this kmsdns reads ({})", crate::report::SCHEMA)]
    Schema { found: u32 },
    #[error(
        "the plan carries no digest of its contents (was it written by `kmsdns plan --out`?); make a new plan and review it"
    )]
    Unsealed,
    #[error(
        "the plan's contents do not match its digest: it was changed (edited by hand, or truncated) after `kmsdns plan --out` wrote it; make a new plan and review it"
    )]
    Tampered,
    #[error(transparent)]
    Digest(#[from] DigestError),
    #[error("cannot serialise the plan: {0}")]
    Serialise(serde_json::Error),
}

/// The SHA-256 of `value` as JSON, in hex. A value that cannot be serialised is an error,
/// never the digest of nothing.
pub fn sha256_json(what: &'static str, value: &impl Serialize) -> Result<String, DigestError> {
    let bytes = serde_json::to_vec(value).map_err(|source| DigestError { what, source })?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    Ok(digest.as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

/// A fingerprint of an observation: a plan file carries the one it was made from, and
/// `kmsdns apply` refuses when the world no longer looks the same.
pub fn fingerprint(obs: &Observation) -> Result<String, DigestError> {
    sha256_json("the observation", obs)
}

impl PlanFile {
    /// A sealed plan file for `zones`, made from `obs` and `findings`.
    pub fn new(
        generated: String,
        obs: &Observation,
        findings: Vec<Finding>,
        zones: Vec<ZonePlan>,
    ) -> Result<PlanFile, DigestError> {
        let mut file = PlanFile {
            schema: crate::report::SCHEMA,
            generated,
            observation: fingerprint(obs)?,
            findings,
            zones,
            digest: None,
        };
        file.seal()?;
        Ok(file)
    }

    /// Sets `digest` to the SHA-256 of the other fields.
    pub fn seal(&mut self) -> Result<(), DigestError> {
        self.digest = Some(self.contents_digest()?);
        Ok(())
    }

    /// The SHA-256 of every field but `digest`, as canonical JSON: serde_json's maps keep
    /// their keys sorted, so the same contents give the same bytes however the file was
    /// spaced.
    fn contents_digest(&self) -> Result<String, DigestError> {
        let mut value = serde_json::to_value(self).map_err(|source| DigestError { what: "the plan", source })?;
        if let Some(fields) = value.as_object_mut() {
            fields.remove("digest");
        }
        sha256_json("the plan", &value)
    }

    /// The file's text.
    pub fn to_json(&self) -> Result<String, PlanFileError> {
        serde_json::to_string_pretty(self).map(|t| t + "\n").map_err(PlanFileError::Serialise)
    }

    /// Reads a plan file, refusing one whose schema is unknown or whose contents do not match
    /// its digest.
    pub fn from_json(text: &str) -> Result<PlanFile, PlanFileError> {
        let file: PlanFile = serde_json::from_str(text).map_err(PlanFileError::Parse)?;
        if file.schema != crate::report::SCHEMA {
            return Err(PlanFileError::Schema { found: file.schema });
        }
        match &file.digest {
            None => Err(PlanFileError::Unsealed),
            Some(digest) if *digest != file.contents_digest()? => Err(PlanFileError::Tampered),
            Some(_) => Ok(file),
        }
    }
}

#[cfg(test)]
mod tests;
