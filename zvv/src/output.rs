//! Reading flags and printing results for people at a terminal; shared by every command.

use anyhow::Context;

/// The BSN as given, or read from standard input for `-`.
pub fn bsn_arg(value: String) -> anyhow::Result<String> {
    if value != "-" {
        return Ok(value);
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the BSN from standard input")?;
    let bsn = line.trim().to_owned();
    if bsn.is_empty() {
        anyhow::bail!("--bsn -: no BSN on standard input");
    }
    Ok(bsn)
}

/// A `YYYY-MM-DD` flag value, checked before any call.
pub fn date_arg(value: &str) -> Result<String, String> {
    match chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        Ok(_) if value.len() == 10 => Ok(value.to_owned()),
        _ => Err(format!("`{value}` is not a date as YYYY-MM-DD")),
    }
}

/// A municipality flag value: a CBS code, `GM` and 4 digits (any case, given back in upper case).
pub fn municipality_arg(value: &str) -> Result<String, String> {
    let code = value.trim().to_ascii_uppercase();
    match zvv_platform::codes::MunicipalityCode::parse(&code) {
        Ok(code) => Ok(code.into_string()),
        Err(_) => Err(format!(
            "`{value}` is not a municipality code: expected the CBS code, GM followed by 4 digits, \
             e.g. GM0363 (Amsterdam) or GM0034 (Almere)"
        )),
    }
}

/// A `YYYY-MM` flag value (a calendar month), checked before any call.
pub fn month_arg(value: &str) -> Result<String, String> {
    let bytes = value.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .is_some_and(|part| part.iter().all(u8::is_ascii_digit))
    };
    let valid = bytes.len() == 7
        && digits(0..4)
        && bytes[4] == b'-'
        && digits(5..7)
        && matches!(
            value.get(5..7).and_then(|m| m.parse::<u32>().ok()),
            Some(1..=12)
        );
    if valid {
        Ok(value.to_owned())
    } else {
        Err(format!("`{value}` is not a month as YYYY-MM, e.g. 2026-01"))
    }
}

pub fn fresh_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Prints `key: value` lines with the values lined up.
pub fn print_fields(fields: &[(&str, String)]) {
    print!("{}", fields_text(fields));
}

/// `key: value` lines with the values lined up, each line ending in a newline.
pub fn fields_text(fields: &[(&str, String)]) -> String {
    let width = fields.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    fields
        .iter()
        .map(|(key, value)| format!("{:<width$} {value}\n", format!("{key}:")))
        .collect()
}

/// Prints rows under a header, columns lined up (the last column is not padded).
pub fn print_table(header: &[&str], rows: Vec<Vec<String>>) {
    print!("{}", table_text(header, &rows));
}

/// Rows under a header, columns lined up (the last column is not padded), each line ending in
/// a newline.
pub fn table_text(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let text = cells
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                if i == last {
                    (*cell).to_owned()
                } else {
                    format!("{cell:<width$}", width = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ");
        format!("{}\n", text.trim_end())
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// Prints the token of the next page, if there is one.
pub fn print_next_page(what: &str, token: &str) {
    if !token.is_empty() {
        println!("next_page_token: {token}");
        println!("(more {what}: repeat with --page-token {token})");
    }
}

pub fn or_dash(value: String) -> String {
    if value.is_empty() {
        "-".to_owned()
    } else {
        value
    }
}

pub fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.to_owned()
}

/// A protobuf timestamp as RFC 3339 UTC, or `-`.
pub fn timestamp(ts: Option<&prost_types::Timestamp>) -> String {
    ts.and_then(|t| {
        let nanos = u32::try_from(t.nanos).ok()?;
        chrono::DateTime::from_timestamp(t.seconds, nanos)
    })
    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    .unwrap_or_else(|| "-".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn municipality_codes_are_checked_and_upper_cased() {
        assert_eq!(municipality_arg("GM0363").as_deref(), Ok("GM0363"));
        assert_eq!(municipality_arg(" gm0034 ").as_deref(), Ok("GM0034"));
        for bad in [
            "", "GM363", "GM03630", "WK036305", "0363", "GMabcd", "GM 0363",
        ] {
            let err = municipality_arg(bad).unwrap_err();
            assert!(err.contains("GM followed by 4 digits"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn months_are_checked() {
        assert_eq!(month_arg("2026-01").as_deref(), Ok("2026-01"));
        assert_eq!(month_arg("2026-12").as_deref(), Ok("2026-12"));
        for bad in [
            "",
            "2026-13",
            "2026-00",
            "2026-1",
            "26-01",
            "2026-01-01",
            "januari",
            "2026- 1",
            "+2026-1",
        ] {
            assert!(month_arg(bad).is_err(), "{bad:?} should be refused");
        }
    }
}

/// The idempotency key of a mutating command.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RequestIdArg {
    /// Idempotency key; default a fresh UUID. Repeat a call with the same key to retry it safely.
    #[arg(long)]
    request_id: Option<String>,
}

impl RequestIdArg {
    pub(crate) fn value(self) -> String {
        self.request_id.unwrap_or_else(fresh_request_id)
    }
}
