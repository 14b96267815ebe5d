//! How to reach a professional: the only personal data of a signal besides the subject's id.

use serde::{Deserialize, Serialize};

/// How to reach the professional behind a signal (or the coordinator of a match).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub name: String,
    pub phone: String,
    pub email: String,
}

/// A contact name: 1-200 characters, no control characters.
pub fn parse_contact_name(value: &str) -> Result<String, &'static str> {
    let n = value.chars().count();
    if n == 0 || value.trim().is_empty() {
        return Err("is required");
    }
    if n > 200 {
        return Err("must be at most 200 characters");
    }
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    Ok(value.to_owned())
}

/// A phone number: 6-20 characters of digits, spaces, dashes and a leading +, with at least
/// six digits.
pub fn parse_phone(value: &str) -> Result<String, &'static str> {
    let digits = value.chars().filter(char::is_ascii_digit).count();
    let shape = value.len() <= 20
        && value
            .char_indices()
            .all(|(i, c)| c.is_ascii_digit() || c == ' ' || c == '-' || (c == '+' && i == 0));
    if value.is_empty() {
        return Err("is required");
    }
    if !shape || digits < 6 {
        return Err("must be a phone number such as +31 20 123 4567");
    }
    Ok(value.to_owned())
}

/// An e-mail address: one @, a non-empty local part, a domain with a dot, no spaces.
pub fn parse_email(value: &str) -> Result<String, &'static str> {
    if value.is_empty() {
        return Err("is required");
    }
    let ok = value.len() <= 254
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if ok {
        Ok(value.to_owned())
    } else {
        Err("must be an e-mail address such as naam@organisatie.nl")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts() {
        assert!(parse_phone("+31 20 123 4567").is_ok());
        assert!(parse_phone("020-1234567").is_ok());
        for bad in [
            "",
            "12345",
            "call me",
            "+31+20 1234567",
            "0201234567890123456789",
        ] {
            assert!(parse_phone(bad).is_err(), "{bad}");
        }
        assert!(parse_email("j.jansen@school.nl").is_ok());
        for bad in [
            "",
            "jansen",
            "@school.nl",
            "j@school",
            "j@@school.nl",
            "j an@school.nl",
            "j@.nl",
        ] {
            assert!(parse_email(bad).is_err(), "{bad}");
        }
        assert!(parse_contact_name("Mw. J. de Boer").is_ok());
        assert!(parse_contact_name("a\tb").is_err());
    }
}
