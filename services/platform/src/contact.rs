//! A professional to contact: name, phone and e-mail, each checked at the boundary, for every
//! service that records who to reach about a subject (the professional behind a signal, a
//! coordinator, a task holder).

use serde::{Deserialize, Serialize};

use crate::error::Violations;

/// How to reach a professional.
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

/// Checks a contact, naming fields under `prefix` (e.g. `contact.name`); a missing contact is a
/// violation of `prefix` itself.
pub fn parse_contact(
    prefix: &str,
    contact: Option<&Contact>,
    v: &mut Violations,
) -> Option<Contact> {
    let Some(c) = contact else {
        v.add(prefix, "is required");
        return None;
    };
    let name = v.check(&format!("{prefix}.name"), parse_contact_name(&c.name));
    let phone = v.check(&format!("{prefix}.phone"), parse_phone(&c.phone));
    let email = v.check(&format!("{prefix}.email"), parse_email(&c.email));
    Some(Contact {
        name: name?,
        phone: phone?,
        email: email?,
    })
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

    #[test]
    fn contacts_name_their_fields_under_the_prefix() {
        let good = Contact {
            name: "Mw. J. de Boer".into(),
            phone: "+31 20 123 4567".into(),
            email: "j.deboer@school.nl".into(),
        };
        let mut v = Violations::default();
        assert_eq!(
            parse_contact("contact", Some(&good), &mut v),
            Some(good.clone())
        );
        assert!(v.is_empty());

        let mut v = Violations::default();
        assert_eq!(parse_contact("contact", None, &mut v), None);
        assert_fields(v, &["contact"]);

        let bad = Contact {
            phone: "call me".into(),
            email: "nobody".into(),
            ..good
        };
        let mut v = Violations::default();
        assert_eq!(
            parse_contact("coordinator.contact", Some(&bad), &mut v),
            None
        );
        assert_fields(
            v,
            &["coordinator.contact.phone", "coordinator.contact.email"],
        );
    }

    fn assert_fields(v: Violations, fields: &[&str]) {
        match v.into_result() {
            Err(crate::error::ApiError::InvalidArgument(list)) => {
                let got: Vec<&str> = list.iter().map(|(f, _)| f.as_str()).collect();
                assert_eq!(got, fields);
            }
            other => panic!("expected violations of {fields:?}, got {other:?}"),
        }
    }
}
