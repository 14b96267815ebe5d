//! CBS region codes: municipality (`GM` + 4 digits) and neighbourhood (`WK` + 6 digits, whose
//! first four digits are the municipality's). Every service parses them here, so that a code in a
//! token's jurisdiction, a request and a stored row means the same thing everywhere.

use std::fmt;

fn has_shape(value: &str, prefix: &str, digits: usize) -> bool {
    value.len() == prefix.len() + digits
        && value.starts_with(prefix)
        && value[prefix.len()..].bytes().all(|b| b.is_ascii_digit())
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MunicipalityCode(String);

impl MunicipalityCode {
    pub fn parse(value: &str) -> Result<Self, &'static str> {
        if has_shape(value, "GM", 4) {
            Ok(Self(value.to_owned()))
        } else {
            Err("must be GM followed by 4 digits, e.g. GM0363")
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighbourhoodCode(String);

impl NeighbourhoodCode {
    pub fn parse(value: &str) -> Result<Self, &'static str> {
        if has_shape(value, "WK", 6) {
            Ok(Self(value.to_owned()))
        } else {
            Err("must be WK followed by 6 digits, e.g. WK036305")
        }
    }

    /// True when this neighbourhood lies in the municipality (CBS codes share the 4 digits).
    pub fn lies_in(&self, municipality: &MunicipalityCode) -> bool {
        self.0[2..6] == municipality.0[2..6]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MunicipalityCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for NeighbourhoodCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert!(MunicipalityCode::parse("GM0363").is_ok());
        for bad in ["", "GM363", "gm0363", "GM03630", "XX0363", "GM03a3"] {
            assert!(MunicipalityCode::parse(bad).is_err(), "{bad}");
        }
        let wk = NeighbourhoodCode::parse("WK036305").unwrap();
        assert!(wk.lies_in(&MunicipalityCode::parse("GM0363").unwrap()));
        assert!(!wk.lies_in(&MunicipalityCode::parse("GM0034").unwrap()));
        for bad in ["WK03630", "WK0363055", "BU036305", "WK0363O5"] {
            assert!(NeighbourhoodCode::parse(bad).is_err(), "{bad}");
        }
    }
}
