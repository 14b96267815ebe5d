//! The reintegration commands as the parties use them: `zvv detention` (the prison's events, the
//! episodes, the statistics), `zvv plan` and `zvv tasks` against a `zvv up` with a private
//! PostgreSQL cluster: one short detention from its BEGIN through the deadline monitor's first
//! run to the release.

mod common;

use common::{Up, free_port, mint, text, zvv};
use std::{
    fs,
    io::Write,
    net::SocketAddr,
    os::unix::fs::PermissionsExt,
    path::PathBuf,
    process::{Output, Stdio},
    time::{Duration, Instant},
};

/// A valid (11-proof) BSN; it must never show up in any output.
const BSN: &str = "111222333";

/// The value of the first `key: value` line of `stdout`.
fn field(stdout: &str, key: &str) -> String {
    let prefix = format!("{key}:");
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|value| value.trim().to_owned())
        .unwrap_or_else(|| panic!("no {key} in:\n{stdout}"))
}

/// The condition_id of the block of `kind` in `zvv plan show` output.
fn condition_id(plan: &str, kind: &str) -> String {
    let mut lines = plan
        .lines()
        .skip_while(|l| !l.starts_with(&format!("{kind} (")));
    lines
        .next()
        .unwrap_or_else(|| panic!("no {kind} in:\n{plan}"));
    field(
        lines.next().expect("a condition_id line").trim(),
        "condition_id",
    )
}

fn day(offset_days: i64) -> String {
    (chrono::Utc::now().date_naive() + chrono::Duration::days(offset_days))
        .format("%Y-%m-%d")
        .to_string()
}

struct Session {
    data: PathBuf,
    addr: String,
    seen: Vec<String>,
}

impl Session {
    fn token(&self, org: &str, org_type: &str, role: &str, extra: &[&str]) -> String {
        mint(&self.data, org, org_type, role, extra)
    }

    fn call(&mut self, token: &str, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        let mut cmd = zvv();
        cmd.args(args)
            .env("ZVV_TOKEN", token)
            .env("ZVV_REINTEGRATION_ADDR", &self.addr);
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

    fn ok(&mut self, token: &str, args: &[&str], stdin: Option<&str>) -> String {
        let (success, stdout, stderr) = self.call(token, args, stdin);
        assert!(success, "zvv {} failed:\n{stdout}{stderr}", args.join(" "));
        stdout
    }

    fn fails(&mut self, token: &str, args: &[&str], stdin: Option<&str>) -> String {
        let (success, stdout, stderr) = self.call(token, args, stdin);
        assert!(
            !success,
            "zvv {} should have failed:\n{stdout}",
            args.join(" ")
        );
        stderr
    }
}

/// `zvv detention record` of `kind` on `on` for the episode DJI-T-1, the BSN on standard input.
fn record<'a>(kind: &'a str, on: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "detention",
        "record",
        "--bsn",
        "-",
        "--external-ref",
        "DJI-T-1",
        "--kind",
        kind,
        "--institution",
        "PI-VUGHT",
        "--institution-type",
        "pi",
        "--on",
        on,
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn one_short_detention_from_begin_to_release() {
    let tmp = tempfile::tempdir().expect("temp dir");
    // As root, PostgreSQL runs as the `postgres` user, who must be able to enter the folder.
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let data = tmp.path().join("data");
    let addr = |port: u16| -> SocketAddr { format!("127.0.0.1:{port}").parse().expect("address") };
    let (intake, reintegration) = (addr(free_port()), addr(free_port()));
    let mut up = Up::start_on(
        &data,
        [intake, addr(0), reintegration, addr(0)],
        &["--deadline-monitor-seconds", "1"],
        &tmp.path().join("up.log"),
    );
    up.wait_for_port(intake, Duration::from_secs(90));
    up.wait_for_port(reintegration, Duration::from_secs(30));
    let mut s = Session {
        data: data.clone(),
        addr: format!("http://{reintegration}"),
        seen: Vec::new(),
    };
    let prison = s.token("pi-vught", "PRISON", "PROFESSIONAL", &[]);
    let municipality = s.token(
        "gm0855",
        "MUNICIPALITY",
        "COORDINATOR",
        &["--municipality", "GM0855"],
    );
    let elsewhere = s.token("gm0363", "MUNICIPALITY", "PROFESSIONAL", &[]);
    let partner = s.token("reclassering-brabant", "PROBATION", "PROFESSIONAL", &[]);
    let analyst = s.token("gm0855", "MUNICIPALITY", "ANALYST", &[]);
    let stdin = format!("{BSN}\n");

    // BEGIN 8 days ago, release expected in 2 days: a short stay
    let (begin, release) = (day(-8), day(2));
    let begin_args = record(
        "begin",
        &begin,
        &["--expected-release", &release, "--municipality", "GM0855"],
    );
    let out = s.ok(&prison, &begin_args, Some(&stdin));
    let detention = field(&out, "detention_id");
    assert_eq!(field(&out, "status"), "detained", "{out}");
    assert_eq!(field(&out, "began_on"), begin, "{out}");
    assert_eq!(field(&out, "expected_release_on"), release, "{out}");
    assert_eq!(field(&out, "short_stay"), "yes", "{out}");
    assert!(!out.contains("duplicate"), "{out}");
    // the same event again changes nothing and says so
    let out = s.ok(&prison, &begin_args, Some(&stdin));
    assert!(out.starts_with("duplicate:"), "{out}");
    assert_eq!(field(&out, "detention_id"), detention);

    // the service's refusals are shown with the field they name
    let tomorrow = day(1);
    let err = s.fails(
        &prison,
        &record("leave-start", &tomorrow, &[]),
        Some(&stdin),
    );
    assert!(err.contains("InvalidArgument"), "{err}");
    assert!(err.contains("occurred_on"), "{err}");
    let err = s.fails(&partner, &record("end", &day(0), &[]), Some(&stdin));
    assert!(err.contains("PermissionDenied"), "{err}");

    // the plan: eight conditions, each action with its date and rule@version
    let plan = s.ok(&municipality, &["plan", "show", &detention], None);
    assert_eq!(field(&plan, "conditions"), "8", "{plan}");
    assert!(
        plan.contains(&format!(
            "VALID_ID_ON_RELEASE  due {release}  identity.short-stay@v1"
        )),
        "{plan}"
    );
    // the monitor (every second here) marks the actions of the first days missed
    let deadline = Instant::now() + Duration::from_secs(30);
    let income = loop {
        let out = s.ok(
            &municipality,
            &["plan", "show", &detention, "--condition", "income"],
            None,
        );
        if out.contains("income (lapsed)") {
            break out;
        }
        assert!(
            Instant::now() < deadline,
            "no miss within 30 s:\n{out}\n{}",
            up.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(field(&income, "conditions"), "1", "{income}");
    assert!(income.contains("income.short-stay@v1  missed"), "{income}");
    // another municipality learns nothing, not even that the episode exists
    let err = s.fails(&elsewhere, &["plan", "show", &detention], None);
    assert!(err.contains("NotFound"), "{err}");
    assert_eq!(
        s.ok(&elsewhere, &["detention", "list"], None),
        "no detentions\n"
    );

    // the municipality moves a date (with a reason) and gives the ID document to probation
    let housing = condition_id(&plan, "housing");
    let moved = day(5);
    let out = s.ok(
        &municipality,
        &[
            "plan",
            "update",
            &housing,
            "--due-on",
            &moved,
            "--reason",
            "partner-agreement",
        ],
        None,
    );
    assert!(
        out.contains(&format!("CHECK_HOUSING  due {moved}"))
            && out.contains("moved: partner-agreement"),
        "{out}"
    );
    let identity = condition_id(&plan, "identity-document");
    let out = s.ok(
        &municipality,
        &[
            "plan",
            "assign",
            &identity,
            "--organisation",
            "reclassering-brabant",
            "--organisation-type",
            "probation",
            "--contact-name",
            "J. de Wit",
            "--contact-phone",
            "+31 73 555 0101",
            "--contact-email",
            "j.dewit@reclassering.nl",
        ],
        None,
    );
    let task = field(&out, "task_id");
    assert_eq!(field(&out, "status"), "assigned", "{out}");

    // the partner sees its task, the episode and, of the plan, only that condition
    let out = s.ok(&partner, &["tasks", "list"], None);
    assert!(
        out.lines().nth(1).is_some_and(|l| l.starts_with(&task)),
        "{out}"
    );
    assert!(out.contains("VALID_ID_ON_RELEASE"), "{out}");
    let out = s.ok(&partner, &["plan", "show", &detention], None);
    assert_eq!(field(&out, "conditions"), "1", "{out}");
    assert!(out.contains("identity-document ("), "{out}");
    assert!(out.contains(&format!("(task {task})")), "{out}");
    let out = s.ok(&partner, &["detention", "list"], None);
    assert!(out.contains(&detention), "{out}");
    let err = s.fails(&partner, &["plan", "readiness", &detention], None);
    assert!(err.contains("PermissionDenied"), "{err}");
    let out = s.ok(&partner, &["tasks", "complete", &task], None);
    assert_eq!(field(&out, "status"), "done", "{out}");
    assert_eq!(field(&out, "condition_status"), "arranged", "{out}");
    assert_eq!(s.ok(&partner, &["tasks", "list"], None), "no open tasks\n");
    let out = s.ok(&partner, &["tasks", "list", "--all"], None);
    assert!(out.contains(&task) && out.contains("done"), "{out}");

    // END today: released; readiness per condition
    let out = s.ok(&prison, &record("end", &day(0), &[]), Some(&stdin));
    assert_eq!(field(&out, "status"), "released", "{out}");
    assert_eq!(field(&out, "released_on"), day(0), "{out}");
    assert_eq!(field(&out, "ready_at_release"), "no", "{out}");
    let out = s.ok(&municipality, &["plan", "readiness", &detention], None);
    assert_eq!(field(&out, "release_on"), day(0), "{out}");
    assert!(field(&out, "ready").starts_with("no (1 of 8"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("identity-document") && l.contains("arranged  yes")),
        "{out}"
    );
    let out = s.ok(
        &municipality,
        &["detention", "list", "--status", "released"],
        None,
    );
    assert!(out.contains(&detention), "{out}");
    assert_eq!(
        s.ok(
            &municipality,
            &["detention", "list", "--status", "detained"],
            None
        ),
        "no detentions\n"
    );
    let out = s.ok(&municipality, &["plan", "replan", &detention], None);
    assert_eq!(field(&out, "detention_id"), detention, "{out}");

    // statistics: one release this month is suppressed; for analysts only
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let stats = [
        "detention",
        "stats",
        "--municipality",
        "GM0855",
        "--from",
        &month,
        "--to",
        &month,
    ];
    let out = s.ok(&analyst, &stats, None);
    assert!(
        out.contains(&format!(
            "{month}  suppressed  suppressed    suppressed      suppressed"
        )),
        "{out}"
    );
    let err = s.fails(&municipality, &stats, None);
    assert!(err.contains("PermissionDenied"), "{err}");

    let everything = s.seen.join("\n");
    assert!(
        !everything.contains(BSN),
        "the BSN appeared in the output:\n{everything}"
    );

    let out = zvv()
        .args([
            "audit",
            "verify",
            "--service",
            "reintegration",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .expect("zvv audit verify runs");
    let stdout = text(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("reintegration: chain intact"),
        "audit verify: {stdout}{}",
        text(&out.stderr)
    );
    let out = zvv()
        .args(["keys", "show", "--data-dir"])
        .arg(&data)
        .output()
        .expect("zvv keys show runs");
    let stdout = text(&out.stdout);
    assert!(
        stdout
            .lines()
            .filter(|l| l
                .trim_start()
                .starts_with("reintegration request-fingerprint"))
            .count()
            == 2
            && stdout.contains("matches the key file"),
        "keys show: {stdout}{}",
        text(&out.stderr)
    );

    let status = up.terminate();
    let log = up.log();
    let status = status.unwrap_or_else(|| panic!("zvv up did not exit within 30 s:\n{log}"));
    assert!(status.success(), "zvv up exited with {status}:\n{log}");
}
