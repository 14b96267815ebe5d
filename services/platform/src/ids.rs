//! Entity ids: UUIDs (v7, time-ordered) in canonical text form.

use uuid::Uuid;

use crate::error::ApiError;

/// A new time-ordered id.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
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
