//! The plan file refuses what was changed after it was written.

use std::collections::BTreeMap;

use super::*;
use crate::plan::plan;
use crate::testkit::World;

fn sealed() -> (World, PlanFile) {
    let w = World::with_zone_settings(
        "policy = \"repair\"\nallow_unsigned = true",
        &["kms1.corp.test", "kms2.corp.test", "old.corp.test"],
    );
    let findings = w.findings();
    let zones = plan(&w.inv, &w.obs, &findings).zones;
    let file = PlanFile::new("2026-01-01T00:00:00Z".into(), &w.obs, findings, zones).unwrap();
    (w, file)
}

#[test]
fn a_sealed_plan_reads_back_as_written_however_it_is_spaced() {
    let (_, file) = sealed();
    assert_eq!(file.digest.as_ref().map(String::len), Some(64));
    let text = file.to_json().unwrap();
    assert_eq!(PlanFile::from_json(&text).unwrap(), file);
    let compact = serde_json::to_string(&file).unwrap();
    assert_eq!(PlanFile::from_json(&compact).unwrap(), file);
}

#[test]
fn a_plan_edited_by_hand_is_refused() {
    let (_, file) = sealed();
    let text = file.to_json().unwrap();
    for (what, from, to) in [
        ("a target", "old.corp.test", "kms1.corp.test"),
        ("an action", "\"delete\"", "\"add\""),
        ("a port", "1688", "1689"),
        ("the observation fingerprint", &file.observation.clone(), &"0".repeat(64)),
    ] {
        assert!(text.contains(from), "{what}: {text}");
        let edited = text.replacen(from, to, 1);
        let e = PlanFile::from_json(&edited).unwrap_err();
        assert!(matches!(e, PlanFileError::Tampered), "{what}: {e}");
        assert!(e.to_string().contains("do not match its digest"), "{e}");
    }
}

#[test]
fn a_truncated_or_unsealed_plan_is_refused() {
    let (_, file) = sealed();
    let text = file.to_json().unwrap();
    let e = PlanFile::from_json(&text[..text.len() / 2]).unwrap_err();
    assert!(matches!(e, PlanFileError::Parse(_)), "{e}");
    assert!(e.to_string().contains("truncated"), "{e}");

    let mut unsealed = file.clone();
    unsealed.digest = None;
    let e = PlanFile::from_json(&unsealed.to_json().unwrap()).unwrap_err();
    assert!(matches!(e, PlanFileError::Unsealed), "{e}");
    // A file of an older kmsdns, without the field at all.
    let mut value = serde_json::to_value(&file).unwrap();
    value.as_object_mut().unwrap().remove("digest");
    let e = PlanFile::from_json(&value.to_string()).unwrap_err();
    assert!(matches!(e, PlanFileError::Unsealed), "{e}");
}

#[test]
fn a_plan_of_another_schema_is_refused() {
    let (_, mut file) = sealed();
    file.schema = 9;
    file.seal().unwrap();
    let e = PlanFile::from_json(&file.to_json().unwrap()).unwrap_err();
    assert!(matches!(e, PlanFileError::Schema { found: 9 }), "{e}");
}

#[test]
fn a_value_that_cannot_be_serialised_is_an_error_never_the_digest_of_nothing() {
    // JSON object keys must be strings: a map keyed by pairs cannot be written.
    let unwritable: BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into();
    let e = sha256_json("a test value", &unwritable).unwrap_err();
    assert!(e.to_string().contains("cannot serialise a test value"), "{e}");
}

#[test]
fn the_fingerprint_follows_the_observation() {
    let (w, file) = sealed();
    assert_eq!(fingerprint(&w.obs).unwrap(), file.observation);
    let moved = w.host("kms2.corp.test", 2, Some(crate::model::ProbeState::Down("refused".into())));
    assert_ne!(fingerprint(&moved.obs).unwrap(), file.observation);
}
