//! `zvv token`: mints a development token with the key `zvv up` created in the data folder.

use anyhow::Context;
use zvv_platform::auth::{MAX_MUNICIPALITIES, OrgType, Role, TokenRequest};

use crate::datadir::{DataDir, DataDirArg};
use crate::output::municipality_arg;

/// The longest lifetime a development token may have.
const MAX_TTL_SECS: i64 = 30 * 24 * 60 * 60;

/// Options of `zvv token`.
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// Organisation identifier (`org` claim), e.g. gm0363.
    #[arg(long)]
    pub org: String,
    /// Kind of organisation (`org_type` claim), e.g. MUNICIPALITY.
    #[arg(long, value_parser = parse_org_type)]
    pub org_type: OrgType,
    /// Role (`roles` claim), e.g. PROFESSIONAL; repeat the flag (or separate with commas) for more.
    #[arg(long = "role", required = true, value_delimiter = ',', value_parser = parse_role)]
    pub roles: Vec<Role>,
    /// Municipality in the token's jurisdiction (`municipalities` claim): its CBS code, GM
    /// followed by 4 digits, e.g. GM0034; repeat the flag (or separate with commas) for more.
    ///
    /// The jurisdiction says which municipalities' people the token may see and change: subjects
    /// in intake, their relations, referrals routed to a triage desk, statistics. Give the
    /// municipalities the organisation works for, e.g. for a neighbourhood team, Veilig Thuis or a
    /// triage officer. Without the flag the claim is left out: a MUNICIPALITY whose --org is a CBS
    /// code (e.g. gm0363) then gets its own code, any other organisation gets none. Suite SERVICE
    /// tokens (--org-type SUITE --role SERVICE) are not limited by jurisdiction.
    #[arg(
        long = "municipality",
        value_name = "GM0000",
        value_delimiter = ',',
        value_parser = municipality_arg
    )]
    pub municipalities: Vec<String>,
    /// Subject (`sub` claim); default `<org>-dev`.
    #[arg(long)]
    pub sub: Option<String>,
    /// The one service the token is for (`aud` becomes `zvv/<service>`): intake, signalling,
    /// reintegration or notifications.
    /// Required for suite SERVICE tokens (--org-type SUITE --role SERVICE), which a service
    /// accepts only when they name it; any other token without it works with every service.
    #[arg(long, value_name = "SERVICE", value_parser = parse_service)]
    pub for_service: Option<String>,
    /// Lifetime: a number with s, m, h or d (e.g. 90s, 30m, 1h, 2d); at most 30d.
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    pub ttl: chrono::Duration,
    #[command(flatten)]
    pub data: DataDirArg,
}

/// Prints a one-line summary on stderr and the token alone on the last line of stdout.
pub fn run(args: TokenArgs) -> anyhow::Result<()> {
    let org = args.org.trim();
    if org.is_empty() {
        anyhow::bail!("--org must not be empty");
    }
    let sub = match args.sub.as_deref().map(str::trim) {
        Some("") => anyhow::bail!("--sub must not be empty"),
        Some(sub) => sub.to_owned(),
        None => format!("{org}-dev"),
    };
    let root = &args.data.data_dir;
    if !root.is_dir() {
        anyhow::bail!(
            "no data folder at {}: run `zvv up` with the same --data-dir first (it creates the development keys)",
            root.display()
        );
    }
    let signer = DataDir::new(root)?.signer()?;
    let mut roles = args.roles;
    roles.sort();
    roles.dedup();
    let mut municipalities = args.municipalities;
    municipalities.sort();
    municipalities.dedup();
    if municipalities.len() > MAX_MUNICIPALITIES {
        anyhow::bail!("--municipality: at most {MAX_MUNICIPALITIES} municipalities per token");
    }
    let suite_service = args.org_type == OrgType::Suite && roles.contains(&Role::Service);
    if suite_service && args.for_service.is_none() {
        anyhow::bail!(
            "a suite SERVICE token is accepted only by the service it names: add --for-service {}",
            SERVICES.join("|")
        );
    }
    let request = TokenRequest {
        sub,
        org: org.to_owned(),
        org_type: args.org_type,
        roles,
        municipalities,
        ttl: args.ttl,
        for_service: args.for_service,
    };
    let token = signer.mint(&request).context("signing the token")?;
    let until = chrono::Utc::now() + args.ttl;
    let roles: Vec<&str> = request.roles.iter().map(|r| r.as_str()).collect();
    let services = match &request.for_service {
        Some(service) => format!("{service} only"),
        None => "every service".to_owned(),
    };
    eprintln!(
        "token for sub={} org={} org_type={} roles={}, jurisdiction: {}, accepted by {}, valid until {}",
        request.sub,
        request.org,
        request.org_type,
        roles.join(","),
        jurisdiction(&request),
        services,
        until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    println!("{token}");
    Ok(())
}

/// The jurisdiction the services will read from the token, in words for the summary line.
fn jurisdiction(request: &TokenRequest) -> String {
    let suite_service =
        request.org_type == OrgType::Suite && request.roles.contains(&Role::Service);
    if suite_service {
        return if request.municipalities.is_empty() {
            "not limited (suite service)".to_owned()
        } else {
            format!(
                "not limited (suite service; {} ignored)",
                request.municipalities.join(",")
            )
        };
    }
    if !request.municipalities.is_empty() {
        return request.municipalities.join(",");
    }
    match municipality_arg(&request.org) {
        Ok(own) if request.org_type == OrgType::Municipality => {
            format!("{own} (the organisation's own code)")
        }
        _ => "none (add --municipality GM0000 for the municipalities the organisation works for)"
            .to_owned(),
    }
}

/// The services a token can be for.
const SERVICES: &[&str] = &["intake", "signalling", "reintegration", "notifications"];

fn parse_service(input: &str) -> Result<String, String> {
    let name = input.trim().to_ascii_lowercase();
    if SERVICES.contains(&name.as_str()) {
        Ok(name)
    } else {
        Err(format!("unknown service; one of: {}", SERVICES.join(", ")))
    }
}

/// `"youth-care"` → `"YOUTH_CARE"`, so that any case and dashes are accepted.
fn normalise(input: &str) -> String {
    input.trim().to_ascii_uppercase().replace('-', "_")
}

fn parse_org_type(input: &str) -> Result<OrgType, String> {
    normalise(input).parse().map_err(|_| {
        let valid: Vec<&str> = OrgType::ALL.iter().map(|t| t.as_str()).collect();
        format!("unknown org type; valid values: {}", valid.join(", "))
    })
}

fn parse_role(input: &str) -> Result<Role, String> {
    normalise(input).parse().map_err(|_| {
        let valid: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
        format!("unknown role; valid values: {}", valid.join(", "))
    })
}

/// `90s`, `30m`, `1h`, `2d`: a positive whole number and a unit, at most 30 days.
fn parse_ttl(input: &str) -> Result<chrono::Duration, String> {
    let invalid =
        || format!("use a whole number with s, m, h or d, e.g. 90s, 30m, 1h, 2d (got {input:?})");
    let text = input.trim();
    let split = text.len().checked_sub(1).ok_or_else(invalid)?;
    let (number, unit) = (
        text.get(..split).ok_or_else(invalid)?,
        text.get(split..).ok_or_else(invalid)?,
    );
    let unit_secs: i64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 60 * 60,
        "d" => 24 * 60 * 60,
        _ => return Err(invalid()),
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let secs = number
        .parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_secs))
        .filter(|secs| *secs <= MAX_TTL_SECS)
        .ok_or_else(|| format!("{input:?} is longer than the maximum of 30d"))?;
    if secs == 0 {
        return Err(format!("{input:?} must be longer than zero"));
    }
    Ok(chrono::Duration::seconds(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("90s"), Ok(chrono::Duration::seconds(90)));
        assert_eq!(parse_ttl("30m"), Ok(chrono::Duration::minutes(30)));
        assert_eq!(parse_ttl("1h"), Ok(chrono::Duration::hours(1)));
        assert_eq!(parse_ttl("2d"), Ok(chrono::Duration::days(2)));
        assert_eq!(parse_ttl(" 30d "), Ok(chrono::Duration::days(30)));
    }

    #[test]
    fn ttl_limits() {
        assert!(parse_ttl("31d").is_err());
        assert!(parse_ttl("721h").is_err());
        assert!(parse_ttl("99999999999999999999d").is_err());
        assert!(parse_ttl("0s").is_err());
    }

    #[test]
    fn ttl_garbage() {
        for bad in [
            "", "h", "1", "1w", "-1h", "+1h", "1.5h", "1 h", "h1", "1hh", "ééh",
        ] {
            assert!(parse_ttl(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn org_types_and_roles_ignore_case() {
        assert_eq!(parse_org_type("municipality"), Ok(OrgType::Municipality));
        assert_eq!(parse_org_type("youth-care"), Ok(OrgType::YouthCare));
        assert_eq!(parse_role("Professional"), Ok(Role::Professional));
        assert_eq!(parse_role("triage_officer"), Ok(Role::TriageOfficer));
        assert_eq!(parse_service(" Intake "), Ok("intake".to_owned()));
        assert_eq!(
            parse_service("Reintegration"),
            Ok("reintegration".to_owned())
        );
        assert!(parse_service("billing").is_err());
    }

    fn request(
        org: &str,
        org_type: OrgType,
        roles: &[Role],
        municipalities: &[&str],
    ) -> TokenRequest {
        TokenRequest {
            sub: format!("{org}-dev"),
            org: org.to_owned(),
            org_type,
            roles: roles.to_vec(),
            municipalities: municipalities.iter().map(|m| (*m).to_owned()).collect(),
            ttl: chrono::Duration::hours(1),
            for_service: None,
        }
    }

    #[test]
    fn municipalities_are_repeatable_comma_separated_and_upper_cased() {
        use clap::Parser;
        #[derive(Debug, clap::Parser)]
        struct Cli {
            #[command(flatten)]
            token: TokenArgs,
        }
        let cli = Cli::try_parse_from([
            "zvv",
            "--org",
            "wijkteam-noord",
            "--org-type",
            "NEIGHBOURHOOD_TEAM",
            "--role",
            "COORDINATOR",
            "--municipality",
            "GM0363,gm0034",
            "--municipality",
            "GM0758",
        ])
        .expect("valid flags");
        assert_eq!(cli.token.municipalities, ["GM0363", "GM0034", "GM0758"]);

        for bad in ["GM363", "gm00345", "0363", "WK036305", "", "GM0363,"] {
            let err = Cli::try_parse_from([
                "zvv",
                "--org",
                "x",
                "--org-type",
                "SCHOOL",
                "--role",
                "PROFESSIONAL",
                "--municipality",
                bad,
            ])
            .expect_err("a malformed code is refused")
            .to_string();
            assert!(err.contains("GM followed by 4 digits"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn the_summary_names_the_jurisdiction() {
        let given = request(
            "wijkteam-noord",
            OrgType::NeighbourhoodTeam,
            &[Role::Coordinator],
            &["GM0034", "GM0363"],
        );
        assert_eq!(jurisdiction(&given), "GM0034,GM0363");
        let own = request("gm0363", OrgType::Municipality, &[Role::Professional], &[]);
        assert_eq!(jurisdiction(&own), "GM0363 (the organisation's own code)");
        let named = request(
            "zvh-amsterdam",
            OrgType::Municipality,
            &[Role::TriageOfficer],
            &[],
        );
        assert!(
            jurisdiction(&named).starts_with("none"),
            "{}",
            jurisdiction(&named)
        );
        let school = request("gm0363", OrgType::School, &[Role::Professional], &[]);
        assert!(
            jurisdiction(&school).starts_with("none"),
            "{}",
            jurisdiction(&school)
        );
        let service = request("zvv-signalling", OrgType::Suite, &[Role::Service], &[]);
        assert_eq!(jurisdiction(&service), "not limited (suite service)");
        let service = request(
            "zvv-signalling",
            OrgType::Suite,
            &[Role::Service],
            &["GM0363"],
        );
        assert!(
            jurisdiction(&service).contains("GM0363 ignored"),
            "{}",
            jurisdiction(&service)
        );
    }

    #[test]
    fn unknown_values_list_the_valid_ones() {
        let err = parse_org_type("gemeente").unwrap_err();
        assert!(
            err.contains("MUNICIPALITY") && err.contains("POLICE"),
            "{err}"
        );
        let err = parse_role("boss").unwrap_err();
        assert!(
            err.contains("PROFESSIONAL") && err.contains("AUDITOR"),
            "{err}"
        );
    }
}
