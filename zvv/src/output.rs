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

pub fn fresh_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Prints `key: value` lines with the values lined up.
pub fn print_fields(fields: &[(&str, String)]) {
    let width = fields.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    for (key, value) in fields {
        println!("{:<width$} {value}", format!("{key}:"));
    }
}

/// Prints rows under a header, columns lined up (the last column is not padded).
pub fn print_table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
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
        println!("{}", text.trim_end());
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
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
