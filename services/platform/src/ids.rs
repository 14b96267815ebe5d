//! Entity ids: UUIDs (v7, time-ordered) in canonical text form.

use uuid::Uuid;

use crate::error::ApiError;

/// A new time-ordered id.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

/// The id of something that is named by other ids (e.g. a relation by its parent and child):
/// always the same for the same `context` and `parts`, different for any other. A UUID of
/// version 8 (custom) from SHA-256 over the context and the parts.
pub fn derived_id(context: &str, parts: &[Uuid]) -> Uuid {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update((context.len() as u64).to_be_bytes());
    h.update(context.as_bytes());
    for part in parts {
        h.update(part.as_bytes());
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// Parses an id sent by a caller; anything but a canonical hyphenated UUID is INVALID_ARGUMENT
/// naming `field`.
pub fn parse_id(field: &str, value: &str) -> Result<Uuid, ApiError> {
    if value.is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    if value.len() != 36 {
        return Err(ApiError::invalid(field, "must be a UUID in canonical form"));
    }
    Uuid::try_parse(value).map_err(|_| ApiError::invalid(field, "must be a UUID in canonical form"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let (a, b) = (new_id(), new_id());
        let id = derived_id("zvv.test", &[a, b]);
        assert_eq!(id, derived_id("zvv.test", &[a, b]));
        assert_ne!(id, derived_id("zvv.test", &[b, a]));
        assert_ne!(id, derived_id("zvv.other", &[a, b]));
        assert_eq!(id.get_version_num(), 8);
    }

    #[test]
    fn accepts_canonical_and_rejects_other_forms() {
        let id = new_id();
        assert_eq!(parse_id("subject_id", &id.to_string()).unwrap(), id);
        assert_eq!(id.get_version_num(), 7);
        for bad in ["", "x", &id.simple().to_string(), &format!("{{{id}}}")] {
            let err = parse_id("subject_id", bad).unwrap_err();
            assert_eq!(err.violations()[0].0, "subject_id");
        }
    }
}
