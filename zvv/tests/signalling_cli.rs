//! The signalling commands as a person uses them: `zvv signal` (with the statistics), `zvv match`
//! and `zvv referral` against a `zvv up` with a private PostgreSQL cluster, one organisation
//! after another.

mod common;

use common::{Up, bsns, free_port, mint, strs, text, zvv};
use std::{
    fs,
    io::Write,
    net::SocketAddr,
    os::unix::fs::PermissionsExt,
    path::PathBuf,
    process::{Output, Stdio},
    time::Duration,
};
use tempfile::TempDir;

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

/// Starts `zvv up` in a fresh folder; the folder goes when the returned [`TempDir`] is dropped.
fn start() -> (TempDir, Up, Session) {
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
    let session = Session {
        data,
        intake: format!("http://{intake}"),
        signalling: format!("http://{signalling}"),
        seen: Vec::new(),
    };
    (tmp, up, session)
}

/// Sends SIGTERM and checks that `zvv up` exits cleanly within 30 s.
fn stop(mut up: Up) {
    let status = up.terminate();
    let log = up.log();
    let status = status.unwrap_or_else(|| panic!("zvv up did not exit within 30 s:\n{log}"));
    assert!(status.success(), "zvv up exited with {status}:\n{log}");
}

/// A day `years` years before today, as YYYY-MM-DD.
fn years_ago(years: u32) -> String {
    chrono::Utc::now()
        .date_naive()
        .checked_sub_months(chrono::Months::new(years * 12))
        .expect("a birth date")
        .format("%Y-%m-%d")
        .to_string()
}

impl Session {
    fn token(&self, org: &str, org_type: &str, role: &str) -> String {
        mint(&self.data, org, org_type, role, &[])
    }

    /// A token whose jurisdiction is `municipalities` (comma-separated CBS codes).
    fn token_for(&self, org: &str, org_type: &str, role: &str, municipalities: &str) -> String {
        mint(
            &self.data,
            org,
            org_type,
            role,
            &["--municipality", municipalities],
        )
    }

    /// Registers a child of `age` in GM0363, neighbourhood WK036305; returns its subject_id.
    fn register_child(&mut self, token: &str, bsn: &str, given_name: &str, age: u32) -> String {
        let birth = years_ago(age);
        let out = self.ok(
            token,
            &[
                "subject",
                "register",
                "--bsn",
                "-",
                "--given-name",
                given_name,
                "--family-name",
                "Bakker",
                "--birth-date",
                &birth,
                "--municipality",
                "GM0363",
                "--neighbourhood",
                "WK036305",
            ],
            Some(&format!("{bsn}\n")),
        );
        field(&out, "subject_id")
    }

    /// The organisation of `token` signals the child `subject_id`; returns the signal_id.
    fn signal(&mut self, token: &str, subject_id: &str, contact: &str) -> String {
        let out = self.ok(
            token,
            &[
                "signal",
                "register",
                "--subject-id",
                subject_id,
                "--contact-name",
                contact,
                "--contact-phone",
                "+31 20 555 0101",
                "--contact-email",
                "contact@example.nl",
            ],
            None,
        );
        field(&out, "signal_id")
    }

    /// Checks that no BSN given to any call showed up in any output.
    fn assert_no_bsn_seen(&self, numbers: &[&str]) {
        let everything = self.seen.join("\n");
        for bsn in numbers {
            assert!(
                !everything.contains(bsn),
                "the BSN {bsn} appeared in the output:\n{everything}"
            );
        }
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
    let (_tmp, up, mut s) = start();
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
            "--municipality",
            "GM0363",
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
    for expected in [
        subject_id.as_str(),
        "orange",
        "awaiting",
        "GM0363",
        "politie-ams",
    ] {
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
            "--municipality",
            "GM0363",
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

    s.assert_no_bsn_seen(&[BSN]);
    stop(up);
}

/// The line of a table that starts with `id`.
fn row<'a>(stdout: &'a str, id: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(id))
        .unwrap_or_else(|| panic!("{id} not listed:\n{stdout}"))
}

#[test]
fn referrals_go_to_the_triage_desks_of_the_childs_municipality() {
    let (_tmp, up, mut s) = start();
    let numbers = bsns(2);
    let municipality = s.token("gm0363", "MUNICIPALITY", "PROFESSIONAL");
    let police = s.token("politie-ams", "POLICE", "PROFESSIONAL");
    let triage_amsterdam = s.token("gm0363", "MUNICIPALITY", "TRIAGE_OFFICER");
    let triage_almere = s.token("gm0034", "MUNICIPALITY", "TRIAGE_OFFICER");
    let veilig_thuis = s.token_for("vt-amsterdam", "VEILIG_THUIS", "TRIAGE_OFFICER", "GM0363");
    let veilig_thuis_region = s.token_for(
        "vt-flevoland-amsterdam",
        "VEILIG_THUIS",
        "TRIAGE_OFFICER",
        "GM0363,GM0034",
    );
    let team_without = s.token("wijkteam-x", "NEIGHBOURHOOD_TEAM", "TRIAGE_OFFICER");
    let today = chrono::Utc::now()
        .date_naive()
        .format("%Y-%m-%d")
        .to_string();
    let known = s.register_child(&municipality, &numbers[0], "Sanne", 9);

    let submit = |subject: &[&str], level: &str, extra: &[&str]| {
        let mut args = vec!["referral", "submit"];
        args.extend_from_slice(subject);
        args.extend_from_slice(&[
            "--instrument",
            "ProKid 12-",
            "--instrument-version",
            "2.1",
            "--level",
            level,
            "--observed-on",
            &today,
        ]);
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };

    // the municipality is required and checked before any call
    let err = s.fails(
        &police,
        &strs(&submit(&["--subject-id", &known], "orange", &[])),
    );
    assert!(err.contains("--municipality"), "{err}");
    let err = s.fails(
        &police,
        &strs(&submit(
            &["--subject-id", &known],
            "orange",
            &["--municipality", "Amsterdam"],
        )),
    );
    assert!(err.contains("GM followed by 4 digits"), "{err}");

    // the police think the child lives in Almere; intake knows Amsterdam, and intake's wins
    let out = s.ok(
        &police,
        &strs(&submit(
            &["--subject-id", &known],
            "orange",
            &["--municipality", "GM0034"],
        )),
        None,
    );
    let to_amsterdam = field(&out, "referral_id");
    assert_eq!(field(&out, "subject_id"), known, "{out}");
    assert!(
        !out.contains("municipality:"),
        "the submitter is not told where the referral went:\n{out}"
    );

    // a triage officer of another municipality sees none of it
    let out = s.ok(&triage_almere, &["referral", "list"], None);
    assert_eq!(out.trim(), "no referrals", "{out}");
    let err = s.fails(
        &triage_almere,
        &[
            "referral",
            "decide",
            &to_amsterdam,
            "--decision",
            "no-action",
            "--rationale",
            "Not ours.",
        ],
    );
    assert!(err.contains("NotFound"), "{err}");
    let out = s.ok(&team_without, &["referral", "list"], None);
    assert_eq!(out.trim(), "no referrals", "{out}");

    // an unknown BSN is registered with intake in the municipality given, with its birth date
    let birth = years_ago(7);
    let out = s.ok(
        &police,
        &strs(&submit(
            &["--bsn", "-"],
            "yellow",
            &["--municipality", "gm0034", "--birth-date", &birth],
        )),
        Some(&format!("{}\n", numbers[1])),
    );
    let to_almere = field(&out, "referral_id");
    let new_child = field(&out, "subject_id");

    let out = s.ok(&triage_amsterdam, &["referral", "list"], None);
    let line = row(&out, &to_amsterdam);
    assert!(line.contains("GM0363"), "{line}");
    assert!(!out.contains(&to_almere), "{out}");
    let out = s.ok(&veilig_thuis, &["referral", "list"], None);
    assert!(row(&out, &to_amsterdam).contains("GM0363"), "{out}");
    assert!(!out.contains(&to_almere), "{out}");
    let out = s.ok(&triage_almere, &["referral", "list"], None);
    let line = row(&out, &to_almere);
    for expected in [
        new_child.as_str(),
        "yellow",
        "awaiting",
        "GM0034",
        "politie-ams",
    ] {
        assert!(line.contains(expected), "{expected} missing from: {line}");
    }
    assert!(!out.contains(&to_amsterdam), "{out}");
    let out = s.ok(&veilig_thuis_region, &["referral", "list"], None);
    assert!(row(&out, &to_amsterdam).contains("GM0363"), "{out}");
    assert!(row(&out, &to_almere).contains("GM0034"), "{out}");

    let out = s.ok(
        &triage_almere,
        &[
            "referral",
            "decide",
            &to_almere,
            "--decision",
            "forward-to-veilig-thuis",
            "--rationale",
            "Veilig Thuis Flevoland takes this up.",
        ],
        None,
    );
    assert_eq!(field(&out, "municipality"), "GM0034", "{out}");
    assert_eq!(field(&out, "decision"), "forward-to-veilig-thuis", "{out}");

    // the child is now known to intake in Almere, with the birth date the police gave
    let almere = s.token("gm0034", "MUNICIPALITY", "PROFESSIONAL");
    let out = s.ok(&almere, &["subject", "get", &new_child], None);
    assert_eq!(field(&out, "municipality"), "GM0034", "{out}");
    assert_eq!(field(&out, "birth_date"), birth, "{out}");
    let err = s.fails(&municipality, &["subject", "get", &new_child]);
    assert!(err.contains("NotFound"), "{err}");

    s.assert_no_bsn_seen(&[&numbers[0], &numbers[1]]);
    stop(up);
}

#[test]
fn statistics_show_only_cells_at_or_above_the_threshold() {
    let (_tmp, up, mut s) = start();
    let numbers = bsns(6);
    let municipality = s.token("gm0363", "MUNICIPALITY", "PROFESSIONAL");
    let school = s.token("school-1", "SCHOOL", "PROFESSIONAL");
    let youth_care = s.token("jeugdzorg-1", "YOUTH_CARE", "PROFESSIONAL");
    let analyst = s.token("gm0363", "MUNICIPALITY", "ANALYST");
    let analyst_almere = s.token("gm0034", "MUNICIPALITY", "ANALYST");

    // five children of ten and one of fourteen, all signalled by the school; one by youth care
    let mut children = Vec::new();
    for (i, bsn) in numbers.iter().enumerate() {
        let age = if i == 5 { 14 } else { 10 };
        children.push(s.register_child(&municipality, bsn, &format!("Kind {i}"), age));
    }
    for child in &children {
        s.signal(&school, child, "Els Visser");
    }
    s.signal(&youth_care, &children[0], "Piet de Jong");

    let today = chrono::Utc::now().date_naive();
    let this_month = today.format("%Y-%m").to_string();
    let next_month = today
        .checked_add_months(chrono::Months::new(1))
        .expect("next month")
        .format("%Y-%m")
        .to_string();
    let year_start = today.format("%Y-01").to_string();
    let stats = |municipality: &str, from: &str, to: &str| {
        [
            "signal",
            "stats",
            "--municipality",
            municipality,
            "--from",
            from,
            "--to",
            to,
        ]
        .map(str::to_owned)
    };

    for from in [&this_month, &year_start] {
        let out = s.ok(&analyst, &strs(&stats("GM0363", from, &this_month)), None);
        assert_eq!(field(&out, "municipality"), "GM0363", "{out}");
        assert_eq!(field(&out, "threshold"), "5", "{out}");
        assert!(
            out.contains("cells with fewer than 5 subjects are left out"),
            "{out}"
        );
        let header = row(&out, "NEIGHBOURHOOD");
        for column in ["AGE_BAND", "ORGANISATION_TYPE", "SUBJECTS"] {
            assert!(header.contains(column), "{column} missing from: {header}");
        }
        // the school's five children of ten; youth care's one and the child of fourteen are
        // below the threshold and left out
        let cells: Vec<&str> = out.lines().filter(|l| l.starts_with("WK")).collect();
        assert_eq!(cells.len(), 1, "{out}");
        let cell: Vec<&str> = cells[0].split_whitespace().collect();
        assert_eq!(cell, ["WK036305", "4-11", "SCHOOL", "5"], "{out}");
        assert!(
            !out.contains("YOUTH_CARE") && !out.contains("12-15"),
            "{out}"
        );
    }

    // nothing to show in a municipality without signals
    let out = s.ok(
        &analyst_almere,
        &strs(&stats("gm0034", &this_month, &this_month)),
        None,
    );
    assert!(out.contains("no cells at or above the threshold"), "{out}");
    assert_eq!(field(&out, "threshold"), "5", "{out}");

    // only analysts, only for municipalities in their jurisdiction, only months that have begun
    let err = s.fails(&analyst, &strs(&stats("GM0034", &this_month, &this_month)));
    assert!(err.contains("PermissionDenied"), "{err}");
    assert!(err.contains("jurisdiction"), "{err}");
    let err = s.fails(
        &analyst_almere,
        &strs(&stats("GM0363", &this_month, &this_month)),
    );
    assert!(err.contains("PermissionDenied"), "{err}");
    let err = s.fails(&school, &strs(&stats("GM0363", &this_month, &this_month)));
    assert!(err.contains("PermissionDenied"), "{err}");
    let err = s.fails(&analyst, &strs(&stats("GM0363", &this_month, &next_month)));
    assert!(err.contains("InvalidArgument"), "{err}");
    assert!(err.contains("to_month"), "{err}");
    let err = s.fails(&analyst, &strs(&stats("GM0363", "2026-13", &this_month)));
    assert!(err.contains("YYYY-MM"), "{err}");
    let err = s.fails(
        &analyst,
        &strs(&stats("Amsterdam", &this_month, &this_month)),
    );
    assert!(err.contains("GM followed by 4 digits"), "{err}");

    let numbers: Vec<&str> = numbers.iter().map(String::as_str).collect();
    s.assert_no_bsn_seen(&numbers);
    stop(up);
}
