//! The signalling commands as a person uses them: `zvv signal`, `zvv match` and `zvv referral`
//! against a `zvv up` with a private PostgreSQL cluster, one organisation after another.

mod common;

use common::{Up, free_port, text, zvv};
use std::{
    fs,
    io::Write,
    net::SocketAddr,
    os::unix::fs::PermissionsExt,
    path::PathBuf,
    process::{Output, Stdio},
    time::Duration,
};

/// A valid (11-proof) BSN; it must never show up in any output.
const BSN: &str = "123456782";

/// The value of the first `key: value` line of `stdout`.
fn field(stdout: &str, key: &str) -> String {
    let prefix = format!("{key}:");
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|value| value.trim().to_owned())
        .unwrap_or_else(|| panic!("no {key} in:\n{stdout}"))
}

/// The calls of one test run: the addresses, and every output seen (to look for the BSN).
struct Session {
    data: PathBuf,
    intake: String,
    signalling: String,
    seen: Vec<String>,
}

impl Session {
    fn token(&self, org: &str, org_type: &str, role: &str) -> String {
        let out = zvv()
            .args([
                "token",
                "--org",
                org,
                "--org-type",
                org_type,
                "--role",
                role,
            ])
            .arg("--data-dir")
            .arg(&self.data)
            .output()
            .expect("zvv token runs");
        assert!(out.status.success(), "token: {}", text(&out.stderr));
        text(&out.stdout)
            .lines()
            .last()
            .expect("a token")
            .trim()
            .to_owned()
    }

    /// Runs `zvv args…` with `token`, feeding `stdin` if given; returns (success, stdout, stderr).
    fn call(&mut self, token: &str, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        let mut cmd = zvv();
        cmd.args(args)
            .env("ZVV_TOKEN", token)
            .env("ZVV_INTAKE_ADDR", &self.intake)
            .env("ZVV_SIGNALLING_ADDR", &self.signalling);
        let out: Output = match stdin {
            None => cmd.output().expect("zvv runs"),
            Some(input) => {
                let mut child = cmd
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("zvv starts");
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(input.as_bytes())
                    .expect("write stdin");
                child.wait_with_output().expect("zvv output")
            }
        };
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        self.seen
            .push(format!("$ zvv {}\n{stdout}{stderr}", args.join(" ")));
        (out.status.success(), stdout, stderr)
    }

    /// A call that must succeed; returns its stdout.
    fn ok(&mut self, token: &str, args: &[&str], stdin: Option<&str>) -> String {
        let (success, stdout, stderr) = self.call(token, args, stdin);
        assert!(success, "zvv {} failed:\n{stdout}{stderr}", args.join(" "));
        stdout
    }

    /// A call that must fail; returns its stderr.
    fn fails(&mut self, token: &str, args: &[&str]) -> String {
        let (success, stdout, stderr) = self.call(token, args, None);
        assert!(
            !success,
            "zvv {} should have failed:\n{stdout}",
            args.join(" ")
        );
        stderr
    }
}

#[test]
fn signals_matches_and_referrals_end_to_end() {
    let tmp = tempfile::tempdir().expect("temp dir");
    // As root, PostgreSQL runs as the `postgres` user, who must be able to enter the folder.
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let data = tmp.path().join("data");
    let intake: SocketAddr = format!("127.0.0.1:{}", free_port())
        .parse()
        .expect("address");
    let signalling: SocketAddr = format!("127.0.0.1:{}", free_port())
        .parse()
        .expect("address");
    let mut up = Up::start(&data, intake, signalling, &tmp.path().join("up.log"));
    up.wait_for_port(intake, Duration::from_secs(90));
    up.wait_for_port(signalling, Duration::from_secs(30));

    let mut s = Session {
        data: data.clone(),
        intake: format!("http://{intake}"),
        signalling: format!("http://{signalling}"),
        seen: Vec::new(),
    };
    let municipality = s.token("gm0363", "MUNICIPALITY", "PROFESSIONAL");
    let school = s.token("school-1", "SCHOOL", "PROFESSIONAL");
    let youth_care = s.token("jeugdzorg-1", "YOUTH_CARE", "PROFESSIONAL");
    let police = s.token("politie-ams", "POLICE", "PROFESSIONAL");
    let triage = s.token("gm0363", "MUNICIPALITY", "TRIAGE_OFFICER");

    // a child of ten (parents must be informed of a signal, the child not yet)
    let today = chrono::Utc::now().date_naive();
    let birth = today
        .checked_sub_months(chrono::Months::new(10 * 12))
        .expect("a birth date")
        .format("%Y-%m-%d")
        .to_string();
    let today = today.format("%Y-%m-%d").to_string();
    let out = s.ok(
        &municipality,
        &[
            "subject",
            "register",
            "--bsn",
            "-",
            "--given-name",
            "Sanne",
            "--family-name",
            "Bakker",
            "--birth-date",
            &birth,
            "--municipality",
            "GM0363",
            "--neighbourhood",
            "WK036305",
        ],
        Some(&format!("{BSN}\n")),
    );
    let subject_id = field(&out, "subject_id");

    // the school signals by BSN, read from standard input: no other organisation, no match
    let out = s.ok(
        &school,
        &[
            "signal",
            "register",
            "--bsn",
            "-",
            "--contact-name",
            "Els Visser",
            "--contact-phone",
            "+31 20 555 0101",
            "--contact-email",
            "e.visser@school.example.nl",
        ],
        Some(&format!("{BSN}\n")),
    );
    let school_signal = field(&out, "signal_id");
    assert_eq!(field(&out, "subject_id"), subject_id, "{out}");
    assert_eq!(field(&out, "status"), "active", "{out}");
    assert_eq!(field(&out, "organisation"), "school-1 (SCHOOL)", "{out}");
    assert_eq!(field(&out, "registered_on"), today, "{out}");
    assert_eq!(field(&out, "duration"), "12 months", "{out}");
    assert_eq!(field(&out, "information_duty"), "not met", "{out}");
    assert!(out.contains("no matches"), "{out}");
    assert!(!out.contains("match_id"), "{out}");

    // youth care signals by subject_id: a client match with both organisations and contacts
    let out = s.ok(
        &youth_care,
        &[
            "signal",
            "register",
            "--subject-id",
            &subject_id,
            "--contact-name",
            "Piet de Jong",
            "--contact-phone",
            "020-5550202",
            "--contact-email",
            "p.dejong@jeugdzorg.example.nl",
            "--months",
            "6",
        ],
        None,
    );
    let youth_signal = field(&out, "signal_id");
    assert_ne!(youth_signal, school_signal);
    assert_eq!(field(&out, "duration"), "6 months", "{out}");
    let match_id = field(&out, "match_id");
    assert_eq!(field(&out, "kind"), "client", "{out}");
    for expected in [
        "school-1 (SCHOOL)",
        "Els Visser",
        "+31 20 555 0101",
        "e.visser@school.example.nl",
        "jeugdzorg-1 (YOUTH_CARE)",
        "Piet de Jong",
        "020-5550202",
        "p.dejong@jeugdzorg.example.nl",
        &school_signal,
        &youth_signal,
    ] {
        assert!(out.contains(expected), "{expected} missing from:\n{out}");
    }

    // the school sees the match too
    let out = s.ok(&school, &["match", "list"], None);
    let line = out
        .lines()
        .find(|l| l.starts_with(&match_id))
        .unwrap_or_else(|| panic!("{match_id} not listed:\n{out}"));
    for expected in ["client", "open", "school-1", "jeugdzorg-1"] {
        assert!(line.contains(expected), "{expected} missing from: {line}");
    }
    let out = s.ok(&school, &["match", "show", &match_id], None);
    assert_eq!(field(&out, "match_id"), match_id, "{out}");
    assert_eq!(field(&out, "status"), "open", "{out}");
    assert_eq!(field(&out, "subjects"), subject_id, "{out}");
    assert_eq!(field(&out, "coordinator"), "(none yet)", "{out}");
    assert_eq!(field(&out, "coordinated"), "no", "{out}");
    assert!(out.contains("p.dejong@jeugdzorg.example.nl"), "{out}");

    // an organisation outside the match sees nothing of it
    let other_school = s.token("school-2", "SCHOOL", "PROFESSIONAL");
    let out = s.ok(&other_school, &["match", "list"], None);
    assert_eq!(out.trim(), "no matches", "{out}");
    let err = s.fails(&other_school, &["match", "show", &match_id]);
    assert!(err.contains("NotFound"), "{err}");

    // youth care coordinates; marking coordinated before that is refused
    let err = s.fails(&school, &["match", "coordinated", &match_id]);
    assert!(err.contains("FailedPrecondition"), "{err}");
    let out = s.ok(
        &school,
        &[
            "match",
            "assign",
            &match_id,
            "--organisation",
            "jeugdzorg-1",
            "--contact-name",
            "Piet de Jong",
            "--contact-phone",
            "020-5550202",
            "--contact-email",
            "p.dejong@jeugdzorg.example.nl",
        ],
        None,
    );
    let coordinator = field(&out, "coordinator");
    assert!(
        coordinator.starts_with("jeugdzorg-1: Piet de Jong, 020-5550202"),
        "{out}"
    );
    let out = s.ok(&youth_care, &["match", "coordinated", &match_id], None);
    assert_eq!(field(&out, "coordinated"), "yes", "{out}");

    // the information duty: parents informed is enough for a child of ten
    let out = s.ok(
        &school,
        &[
            "signal",
            "inform",
            &school_signal,
            "--parents-informed-on",
            &today,
        ],
        None,
    );
    assert_eq!(field(&out, "parents_informed_on"), today, "{out}");
    assert_eq!(field(&out, "child_informed_on"), "-", "{out}");
    assert_eq!(field(&out, "information_duty"), "met", "{out}");
    let out = s.ok(&school, &["signal", "show", &school_signal], None);
    assert_eq!(field(&out, "information_duty"), "met", "{out}");
    assert_eq!(
        field(&out, "contact"),
        "Els Visser, +31 20 555 0101, e.visser@school.example.nl",
        "{out}"
    );

    // list, close, list again
    let out = s.ok(&school, &["signal", "list", "--status", "active"], None);
    let line = out
        .lines()
        .find(|l| l.starts_with(&school_signal))
        .unwrap_or_else(|| panic!("{school_signal} not listed:\n{out}"));
    for expected in [subject_id.as_str(), "active", today.as_str()] {
        assert!(line.contains(expected), "{expected} missing from: {line}");
    }
    assert!(!out.contains(&youth_signal), "another org's signal:\n{out}");
    let out = s.ok(&school, &["signal", "list", "--status", "closed"], None);
    assert_eq!(out.trim(), "no signals", "{out}");
    let out = s.ok(
        &school,
        &["signal", "close", &school_signal, "--reason", "risk-gone"],
        None,
    );
    assert_eq!(field(&out, "status"), "closed", "{out}");
    assert_eq!(field(&out, "close_reason"), "risk-gone", "{out}");
    let err = s.fails(
        &school,
        &["signal", "close", &school_signal, "--reason", "unjustified"],
    );
    assert!(err.contains("FailedPrecondition"), "{err}");
    let out = s.ok(&school, &["signal", "list", "--status", "closed"], None);
    assert!(out.contains(&school_signal), "{out}");

    // with one of its two organisations gone, the match closes
    let out = s.ok(&youth_care, &["match", "show", &match_id], None);
    assert_eq!(field(&out, "status"), "closed", "{out}");

    // a new signal by the school, once; then its two signals page by page
    let register_again = [
        "signal",
        "register",
        "--subject-id",
        &subject_id,
        "--contact-name",
        "Els Visser",
        "--contact-phone",
        "+31 20 555 0101",
        "--contact-email",
        "e.visser@school.example.nl",
        "--months",
        "3",
    ];
    let out = s.ok(&school, &register_again, None);
    let second_signal = field(&out, "signal_id");
    assert_eq!(field(&out, "kind"), "client", "a new match:\n{out}");
    let err = s.fails(&school, &register_again);
    assert!(err.contains("AlreadyExists"), "{err}");
    assert!(err.contains(&second_signal), "{err}");
    let out = s.ok(&school, &["signal", "list", "--page-size", "1"], None);
    assert_eq!(
        out.lines().count(),
        4,
        "header, one signal, the token:\n{out}"
    );
    let token = field(&out, "next_page_token");
    let page2 = s.ok(
        &school,
        &["signal", "list", "--page-size", "1", "--page-token", &token],
        None,
    );
    assert!(!page2.contains("next_page_token"), "{page2}");
    let both = format!("{out}{page2}");
    assert!(both.contains(&school_signal), "{both}");
    assert!(both.contains(&second_signal), "{both}");

    // a police referral by BSN; the police cannot triage
    let out = s.ok(
        &police,
        &[
            "referral",
            "submit",
            "--bsn",
            "-",
            "--instrument",
            "ProKid 12-",
            "--instrument-version",
            "2.1",
            "--level",
            "orange",
            "--observed-on",
            &today,
        ],
        Some(&format!("{BSN}\n")),
    );
    let referral_id = field(&out, "referral_id");
    assert_eq!(field(&out, "subject_id"), subject_id, "{out}");
    assert_eq!(field(&out, "instrument"), "ProKid 12- 2.1", "{out}");
    assert_eq!(field(&out, "level"), "orange", "{out}");
    assert_eq!(field(&out, "status"), "awaiting", "{out}");
    assert_ne!(field(&out, "decide_by"), "-", "{out}");
    let err = s.fails(&police, &["referral", "list"]);
    assert!(err.contains("PermissionDenied"), "{err}");

    // the triage officer lists and decides
    let out = s.ok(&triage, &["referral", "list", "--status", "awaiting"], None);
    let line = out
        .lines()
        .find(|l| l.starts_with(&referral_id))
        .unwrap_or_else(|| panic!("{referral_id} not listed:\n{out}"));
    for expected in [subject_id.as_str(), "orange", "awaiting", "politie-ams"] {
        assert!(line.contains(expected), "{expected} missing from: {line}");
    }
    assert!(!line.contains("OVERDUE"), "{line}");
    let out = s.ok(&triage, &["referral", "list", "--overdue"], None);
    assert_eq!(out.trim(), "no referrals", "{out}");
    let out = s.ok(
        &triage,
        &[
            "referral",
            "decide",
            &referral_id,
            "--decision",
            "open-family-approach",
            "--rationale",
            "Known to the neighbourhood team; family approach first.",
        ],
        None,
    );
    assert_eq!(field(&out, "status"), "decided", "{out}");
    assert_eq!(field(&out, "decision"), "open-family-approach", "{out}");
    assert_eq!(
        field(&out, "rationale"),
        "Known to the neighbourhood team; family approach first.",
        "{out}"
    );
    let out = s.ok(&triage, &["referral", "list", "--status", "decided"], None);
    assert!(out.contains(&referral_id), "{out}");
    let out = s.ok(&triage, &["referral", "list", "--status", "awaiting"], None);
    assert!(!out.contains(&referral_id), "{out}");

    // bad flag values are refused before any call, naming the valid ones
    let err = s.fails(
        &police,
        &[
            "referral",
            "submit",
            "--subject-id",
            &subject_id,
            "--instrument",
            "ProKid 12-",
            "--instrument-version",
            "2.1",
            "--level",
            "purple",
            "--observed-on",
            &today,
        ],
    );
    assert!(err.contains("invalid value 'purple'"), "{err}");
    assert!(err.contains("white, yellow, orange, red"), "{err}");
    let err = s.fails(
        &school,
        &["signal", "close", &youth_signal, "--reason", "bored"],
    );
    assert!(err.contains("unjustified, risk-gone"), "{err}");
    let err = s.fails(
        &school,
        &[
            "signal",
            "register",
            "--bsn",
            "-",
            "--subject-id",
            &subject_id,
            "--contact-name",
            "x",
            "--contact-phone",
            "0201234567",
            "--contact-email",
            "x@example.nl",
        ],
    );
    assert!(err.contains("cannot be used with"), "{err}");

    let everything = s.seen.join("\n");
    assert!(
        !everything.contains(BSN),
        "the BSN appeared in the output:\n{everything}"
    );

    let status = up.terminate();
    let log = up.log();
    let status = status.unwrap_or_else(|| panic!("zvv up did not exit within 30 s:\n{log}"));
    assert!(status.success(), "zvv up exited with {status}:\n{log}");
}
