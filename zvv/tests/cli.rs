//! The `zvv` binary as a person uses it: `zvv token`, argument errors, and end-to-end runs of
//! `zvv up` with a private PostgreSQL cluster, the subject commands and `zvv audit verify`.

use std::{
    fs,
    net::SocketAddr,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

mod common;

use common::{Up, bsns, free_port, mint, strs, text, zvv};
use zvv_platform::auth::{OrgType, Role, TokenVerifier, generate_ed25519_pem};

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("zvv runs")
}

/// A data folder with only a development signing key; returns the public key's path.
fn data_dir_with_key(dir: &Path) -> PathBuf {
    let (private, public) = generate_ed25519_pem().expect("key pair");
    fs::create_dir_all(dir.join("keys")).expect("keys dir");
    fs::write(dir.join("keys/jwt-signing.pem"), private).expect("private key");
    let public_path = dir.join("public.pem");
    fs::write(&public_path, public).expect("public key");
    public_path
}

#[test]
fn token_is_alone_on_the_last_line_and_verifies() {
    let dir = tempfile::tempdir().expect("temp dir");
    let public = data_dir_with_key(dir.path());
    let out = run(zvv()
        .args([
            "token",
            "--org",
            "gm0363",
            "--org-type",
            "municipality",
            "--role",
            "PROFESSIONAL",
            "--role",
            "coordinator",
            "--ttl",
            "30m",
            "--data-dir",
        ])
        .arg(dir.path()));
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let jwt = stdout.lines().last().expect("a last line").trim();
    assert_eq!(jwt.split('.').count(), 3, "not a JWT: {jwt}");
    assert!(
        jwt.split('.').all(|part| !part.is_empty()),
        "not a JWT: {jwt}"
    );

    let verifier =
        TokenVerifier::from_files(&[public], None, "zvv-dev", "zvv", 10).expect("verifier");
    let principal = verifier.verify(jwt).expect("the token verifies");
    assert_eq!(principal.org, "gm0363");
    assert_eq!(principal.sub, "gm0363-dev");
    assert_eq!(principal.org_type, OrgType::Municipality);
    assert_eq!(principal.roles, vec![Role::Professional, Role::Coordinator]);
}

/// The JSON payload of a JWT (its middle part, base64url without padding), unverified.
fn jwt_payload(jwt: &str) -> serde_json::Value {
    let part = jwt.split('.').nth(1).expect("a JWT payload");
    let mut bits: u32 = 0;
    let mut count = 0;
    let mut bytes = Vec::new();
    for c in part.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => panic!("not base64url: {part}"),
        };
        bits = (bits << 6) | u32::from(value);
        count += 6;
        if count >= 8 {
            count -= 8;
            bytes.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    serde_json::from_slice(&bytes).expect("the payload is JSON")
}

/// `zvv token` with `args` against the data folder `dir`: (success, token or "", stderr).
fn token(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = run(zvv().arg("token").args(args).arg("--data-dir").arg(dir));
    let stdout = text(&out.stdout);
    let jwt = stdout.lines().last().unwrap_or("").trim().to_owned();
    (out.status.success(), jwt, text(&out.stderr))
}

#[test]
fn token_puts_the_municipalities_in_the_claim() {
    let dir = tempfile::tempdir().expect("temp dir");
    let public = data_dir_with_key(dir.path());
    let (ok, jwt, stderr) = token(
        dir.path(),
        &[
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
            "--municipality",
            "GM0363",
        ],
    );
    assert!(ok, "{stderr}");
    let payload = jwt_payload(&jwt);
    assert_eq!(
        payload["municipalities"],
        serde_json::json!(["GM0034", "GM0363", "GM0758"]),
        "{payload}"
    );
    assert!(
        stderr.contains("jurisdiction: GM0034,GM0363,GM0758"),
        "{stderr}"
    );
    let verifier =
        TokenVerifier::from_files(&[public], None, "zvv-dev", "zvv", 10).expect("verifier");
    let principal = verifier.verify(&jwt).expect("the token verifies");
    assert_eq!(principal.municipalities_text(), "GM0034,GM0363,GM0758");

    // without the flag the claim is left out; the summary says what the services will read
    let (ok, jwt, stderr) = token(
        dir.path(),
        &[
            "--org",
            "gm0363",
            "--org-type",
            "MUNICIPALITY",
            "--role",
            "PROFESSIONAL",
        ],
    );
    assert!(ok, "{stderr}");
    let payload = jwt_payload(&jwt);
    assert!(payload.get("municipalities").is_none(), "{payload}");
    assert!(
        stderr.contains("jurisdiction: GM0363 (the organisation's own code)"),
        "{stderr}"
    );
    let principal = verifier.verify(&jwt).expect("the token verifies");
    assert_eq!(principal.municipalities_text(), "GM0363");

    let (ok, jwt, stderr) = token(
        dir.path(),
        &[
            "--org",
            "vt-amsterdam",
            "--org-type",
            "VEILIG_THUIS",
            "--role",
            "TRIAGE_OFFICER",
        ],
    );
    assert!(ok, "{stderr}");
    assert!(jwt_payload(&jwt).get("municipalities").is_none());
    assert!(stderr.contains("jurisdiction: none"), "{stderr}");

    let service = [
        "--org",
        "zvv-signalling",
        "--org-type",
        "SUITE",
        "--role",
        "SERVICE",
    ];
    // a SERVICE token must name the one service it is for
    let (ok, jwt, stderr) = token(dir.path(), &service);
    assert!(!ok && jwt.is_empty(), "{stderr}");
    assert!(
        stderr.contains("--for-service intake|signalling|reintegration|notifications"),
        "{stderr}"
    );
    let (ok, jwt, stderr) = token(
        dir.path(),
        &[&service[..], &["--for-service", "intake"]].concat(),
    );
    assert!(ok, "{stderr}");
    assert!(stderr.contains("jurisdiction: not limited"), "{stderr}");
    assert!(stderr.contains("accepted by intake only"), "{stderr}");
    assert_eq!(jwt_payload(&jwt)["aud"], "zvv/intake");
    let (ok, jwt, stderr) = token(
        dir.path(),
        &[&service[..], &["--for-service", "reintegration"]].concat(),
    );
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("accepted by reintegration only"),
        "{stderr}"
    );
    assert_eq!(jwt_payload(&jwt)["aud"], "zvv/reintegration");
    let (ok, _, stderr) = token(
        dir.path(),
        &[&service[..], &["--for-service", "billing"]].concat(),
    );
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("one of: intake, signalling, reintegration, notifications"),
        "{stderr}"
    );
}

#[test]
fn malformed_municipality_is_refused_with_the_expected_shape() {
    let dir = tempfile::tempdir().expect("temp dir");
    data_dir_with_key(dir.path());
    for bad in ["GM363", "0363", "WK036305", "GM0363,Almere", "GM03630"] {
        let (ok, jwt, stderr) = token(
            dir.path(),
            &[
                "--org",
                "wijkteam-noord",
                "--org-type",
                "NEIGHBOURHOOD_TEAM",
                "--role",
                "PROFESSIONAL",
                "--municipality",
                bad,
            ],
        );
        assert!(!ok, "{bad} accepted");
        assert!(jwt.is_empty(), "no token expected for {bad}: {jwt}");
        assert!(stderr.contains("--municipality"), "{stderr}");
        assert!(stderr.contains("GM followed by 4 digits"), "{stderr}");
        assert!(stderr.contains("e.g. GM0363"), "{stderr}");
    }
}

#[test]
fn token_help_explains_the_jurisdiction() {
    let out = run(zvv().args(["token", "--help"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let help = text(&out.stdout);
    for expected in [
        "--municipality",
        "jurisdiction",
        "which municipalities' people",
        "gets its own code",
        "not limited",
    ] {
        assert!(help.contains(expected), "{expected} missing from:\n{help}");
    }
}

#[test]
fn token_takes_sub_and_comma_separated_roles() {
    let dir = tempfile::tempdir().expect("temp dir");
    let public = data_dir_with_key(dir.path());
    let out = run(zvv()
        .args([
            "token",
            "--org",
            "zvv-signalling",
            "--org-type",
            "SUITE",
            "--role",
            "SERVICE,auditor",
            "--for-service",
            "signalling",
        ])
        .args(["--sub", "signalling", "--data-dir"])
        .arg(dir.path()));
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let jwt = stdout.lines().last().expect("a last line").trim();
    let verifier = TokenVerifier::from_files(&[public], None, "zvv-dev", "zvv", 10)
        .expect("verifier")
        .for_service("signalling");
    let principal = verifier.verify(jwt).expect("the token verifies");
    assert_eq!(principal.sub, "signalling");
    assert_eq!(principal.org_type, OrgType::Suite);
    assert_eq!(principal.roles, vec![Role::Service, Role::Auditor]);
}

#[test]
fn token_without_keys_says_to_run_zvv_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    for data_dir in [dir.path().to_path_buf(), dir.path().join("never-created")] {
        let out = run(zvv()
            .args([
                "token",
                "--org",
                "gm0363",
                "--org-type",
                "MUNICIPALITY",
                "--role",
                "PROFESSIONAL",
            ])
            .arg("--data-dir")
            .arg(&data_dir));
        assert!(!out.status.success());
        let stderr = text(&out.stderr);
        assert!(stderr.contains("zvv up"), "{stderr}");
        assert!(text(&out.stdout).trim().is_empty(), "no token expected");
    }
    assert!(
        !dir.path().join("never-created").exists(),
        "zvv token must not create a data folder"
    );
}

#[test]
fn bad_org_type_lists_the_valid_values() {
    let dir = tempfile::tempdir().expect("temp dir");
    data_dir_with_key(dir.path());
    let out = run(zvv()
        .args([
            "token",
            "--org",
            "gm0363",
            "--org-type",
            "GEMEENTE",
            "--role",
            "PROFESSIONAL",
        ])
        .arg("--data-dir")
        .arg(dir.path()));
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    for valid in ["MUNICIPALITY", "POLICE", "NEIGHBOURHOOD_TEAM", "SUITE"] {
        assert!(stderr.contains(valid), "{valid} missing from: {stderr}");
    }
}

#[test]
fn bad_role_and_ttl_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    data_dir_with_key(dir.path());
    let out = run(zvv()
        .args([
            "token",
            "--org",
            "gm0363",
            "--org-type",
            "MUNICIPALITY",
            "--role",
            "BOSS",
        ])
        .arg("--data-dir")
        .arg(dir.path()));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("PROFESSIONAL"),
        "{}",
        text(&out.stderr)
    );

    let out = run(zvv()
        .args([
            "token",
            "--org",
            "gm0363",
            "--org-type",
            "MUNICIPALITY",
            "--role",
            "PROFESSIONAL",
        ])
        .args(["--ttl", "31d", "--data-dir"])
        .arg(dir.path()));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("30d"), "{}", text(&out.stderr));
}

#[test]
fn audit_verify_lists_the_known_services() {
    let out = run(zvv().args(["audit", "verify", "--service", "billing"]));
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("known services: intake, signalling, reintegration, notifications"),
        "{stderr}"
    );
}

#[test]
fn update_without_fields_is_refused_before_calling() {
    let out = run(zvv().args([
        "subject",
        "update",
        "0190f0a0-0000-7000-8000-000000000000",
        "--token",
        "x",
        "--intake-addr",
        "http://127.0.0.1:9",
    ]));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("nothing to update"),
        "{}",
        text(&out.stderr)
    );
}

fn subject_id_of(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("subject_id:"))
        .map(|id| id.trim().to_owned())
        .unwrap_or_else(|| panic!("no subject_id in:\n{stdout}"))
}

#[test]
fn up_serves_intake_until_sigterm() {
    let tmp = tempfile::tempdir().expect("temp dir");
    // As root, PostgreSQL runs as the `postgres` user, who must be able to enter the folder.
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let data = tmp.path().join("data");
    let port = free_port();
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    let mut up = Up::start(&data, listen, any_port(), &tmp.path().join("up.log"));
    up.wait_for_port(listen, Duration::from_secs(90));
    // signalling's token to intake, for intake only, readable by the owner only
    let token_file = data.join("tokens/signalling-for-intake.token");
    let service_token = fs::read_to_string(&token_file).expect("service token written");
    assert_eq!(jwt_payload(service_token.trim())["aud"], "zvv/intake");
    assert_eq!(
        fs::metadata(&token_file)
            .expect("token file")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    let out = run(zvv()
        .args([
            "token",
            "--org",
            "gm0363",
            "--org-type",
            "MUNICIPALITY",
            "--role",
            "PROFESSIONAL",
        ])
        .arg("--data-dir")
        .arg(&data));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout)
        .lines()
        .last()
        .expect("token")
        .trim()
        .to_owned();

    let addr = format!("http://{listen}");
    let client = |args: &[&str]| {
        let mut cmd = zvv();
        cmd.args(args)
            .env("ZVV_TOKEN", &token)
            .env("ZVV_INTAKE_ADDR", &addr);
        run(&mut cmd)
    };
    let register = [
        "subject",
        "register",
        "--bsn",
        "123456782",
        "--given-name",
        "Jan",
        "--family-name",
        "Jansen",
        "--birth-date",
        "2015-03-01",
        "--municipality",
        "GM0363",
        "--neighbourhood",
        "WK036305",
    ];
    let out = client(&register);
    assert!(
        out.status.success(),
        "register: {}\n{}",
        text(&out.stderr),
        up.log()
    );
    let subject_id = subject_id_of(&text(&out.stdout));

    let out = client(&["subject", "get", &subject_id]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "get: {}", text(&out.stderr));
    assert!(stdout.contains("******782"), "{stdout}");
    assert!(!stdout.contains("123456782"), "{stdout}");
    assert!(stdout.contains("Jan Jansen"), "{stdout}");
    assert_eq!(subject_id_of(&stdout), subject_id);

    // a suite service resolves the BSN, given on standard input (not on the command line)
    let out = run(zvv()
        .args([
            "token",
            "--org",
            "zvv-signalling",
            "--org-type",
            "SUITE",
            "--role",
            "SERVICE",
            "--for-service",
            "intake",
            "--data-dir",
        ])
        .arg(&data));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let service_token = text(&out.stdout)
        .lines()
        .last()
        .expect("token")
        .trim()
        .to_owned();
    let mut resolve = zvv()
        .args(["subject", "resolve", "--bsn", "-"])
        .env("ZVV_TOKEN", &service_token)
        .env("ZVV_INTAKE_ADDR", &addr)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn resolve");
    std::io::Write::write_all(&mut resolve.stdin.take().expect("stdin"), b"123456782\n")
        .expect("write bsn");
    let out = resolve.wait_with_output().expect("resolve output");
    assert!(out.status.success(), "resolve: {}", text(&out.stderr));
    assert_eq!(subject_id_of(&text(&out.stdout)), subject_id);

    let out = client(&register);
    assert!(!out.status.success(), "a second registration must fail");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("AlreadyExists"), "{stderr}");
    assert!(stderr.contains(&subject_id), "{stderr}");

    let out = run(zvv()
        .args(["audit", "verify", "--service", "intake", "--data-dir"])
        .arg(&data));
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "audit verify: {}{}",
        stdout,
        text(&out.stderr)
    );
    assert!(
        stdout.contains("intake: ") && stdout.contains("chain intact"),
        "{stdout}"
    );
    assert!(
        data.join("pg/postmaster.pid").exists(),
        "audit verify must leave the running cluster alone"
    );
    assert!(stdout.contains("seal lag"), "{stdout}");
    // notifications keeps an audit log of its own (signalling's subscription at start)
    let out = run(zvv()
        .args([
            "audit",
            "verify",
            "--service",
            "notifications",
            "--data-dir",
        ])
        .arg(&data));
    let stdout = text(&out.stdout);
    assert!(
        out.status.success()
            && stdout.contains("notifications: ")
            && stdout.contains("chain intact"),
        "audit verify notifications: {}{}",
        stdout,
        text(&out.stderr)
    );

    // each service runs as its own runtime role, which may only add and read audit rows
    let port: u16 = std::fs::read_to_string(data.join("pg/zvv-port"))
        .expect("port file")
        .trim()
        .parse()
        .expect("port");
    runtime_role_cannot_rewrite_the_audit(port, &data);

    stop_up(&mut up, &data);

    // A second run reuses the cluster, the database and the keys (the same token still works).
    let mut up = Up::start(&data, listen, any_port(), &tmp.path().join("up-2.log"));
    up.wait_for_port(listen, Duration::from_secs(90));
    let out = client(&["subject", "get", &subject_id]);
    assert!(
        out.status.success(),
        "get after restart: {}\n{}",
        text(&out.stderr),
        up.log()
    );
    assert!(
        text(&out.stdout).contains("Jan Jansen"),
        "{}",
        text(&out.stdout)
    );
    stop_up(&mut up, &data);
}

/// Sends SIGTERM and checks that `zvv up` exits cleanly within 30 s and stops its cluster.
fn stop_up(up: &mut Up, data: &Path) {
    let status = up.terminate();
    let log = up.log();
    let status = status.unwrap_or_else(|| panic!("zvv up did not exit within 30 s:\n{log}"));
    assert!(status.success(), "zvv up exited with {status}:\n{log}");
    assert!(
        log.contains("stopped the private PostgreSQL cluster"),
        "{log}"
    );
    assert!(
        !data.join("pg/postmaster.pid").exists(),
        "cluster still running:\n{log}"
    );
}

/// Lets the system pick signalling's port (these tests only call intake).
fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A `key: value` line's value.
fn field(stdout: &str, key: &str) -> String {
    let prefix = format!("{key}:");
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|value| value.trim().to_owned())
        .unwrap_or_else(|| panic!("no {key} in:\n{stdout}"))
}

#[test]
fn relations_are_recorded_and_removed_by_coordinators_of_the_jurisdiction() {
    let tmp = tempfile::tempdir().expect("temp dir");
    // As root, PostgreSQL runs as the `postgres` user, who must be able to enter the folder.
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let data = tmp.path().join("data");
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port())
        .parse()
        .expect("address");
    let mut up = Up::start(&data, listen, any_port(), &tmp.path().join("up.log"));
    up.wait_for_port(listen, Duration::from_secs(90));

    let professional = mint(&data, "gm0363", "MUNICIPALITY", "PROFESSIONAL", &[]);
    let coordinator = mint(&data, "gm0363", "MUNICIPALITY", "COORDINATOR", &[]);
    let team = mint(
        &data,
        "wijkteam-oost",
        "NEIGHBOURHOOD_TEAM",
        "COORDINATOR",
        &["--municipality", "GM0363"],
    );
    let team_elsewhere = mint(
        &data,
        "wijkteam-almere",
        "NEIGHBOURHOOD_TEAM",
        "COORDINATOR",
        &["--municipality", "GM0034"],
    );
    let team_without = mint(
        &data,
        "wijkteam-x",
        "NEIGHBOURHOOD_TEAM",
        "COORDINATOR",
        &[],
    );
    let service = mint(
        &data,
        "zvv-signalling",
        "SUITE",
        "SERVICE",
        &["--for-service", "intake"],
    );

    let addr = format!("http://{listen}");
    let call = |token: &str, args: &[&str]| {
        let out = run(zvv()
            .args(args)
            .env("ZVV_TOKEN", token)
            .env("ZVV_INTAKE_ADDR", &addr));
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    };
    let ok = |token: &str, args: &[&str]| {
        let (success, stdout, stderr) = call(token, args);
        assert!(success, "zvv {} failed:\n{stdout}{stderr}", args.join(" "));
        stdout
    };
    let fails = |token: &str, args: &[&str]| {
        let (success, stdout, stderr) = call(token, args);
        assert!(!success, "zvv {} should fail:\n{stdout}", args.join(" "));
        stderr
    };

    let numbers = bsns(3);
    let register = |bsn: &str, given: &str, birth: &str| {
        let out = ok(
            &professional,
            &[
                "subject",
                "register",
                "--bsn",
                bsn,
                "--given-name",
                given,
                "--family-name",
                "Visser",
                "--birth-date",
                birth,
                "--municipality",
                "GM0363",
                "--neighbourhood",
                "WK036305",
            ],
        );
        subject_id_of(&out)
    };
    let parent = register(&numbers[0], "Anna", "1985-07-14");
    let child = register(&numbers[1], "Mila", "2016-02-03");
    let link = |source: &str| {
        vec![
            "subject".to_owned(),
            "link".to_owned(),
            "--parent".to_owned(),
            parent.clone(),
            "--child".to_owned(),
            child.clone(),
            "--kind".to_owned(),
            "guardian".to_owned(),
            "--source".to_owned(),
            source.to_owned(),
        ]
    };

    // the source is required, and its values are listed before any call
    let err = fails(
        &coordinator,
        &["subject", "link", "--parent", &parent, "--child", &child],
    );
    assert!(err.contains("--source"), "{err}");
    let err = fails(&coordinator, &strs(&link("hearsay")));
    assert!(err.contains("brp, court-order, declaration"), "{err}");

    // a professional may not link; a coordinator of another municipality does not see the two
    let err = fails(&professional, &strs(&link("court-order")));
    assert!(err.contains("PermissionDenied"), "{err}");
    let err = fails(&team_elsewhere, &strs(&link("court-order")));
    assert!(err.contains("NotFound"), "{err}");

    let out = ok(&coordinator, &strs(&link("court-order")));
    assert_eq!(field(&out, "parent"), parent, "{out}");
    assert_eq!(field(&out, "child"), child, "{out}");
    assert_eq!(field(&out, "kind"), "guardian", "{out}");
    assert_eq!(field(&out, "source"), "court-order", "{out}");

    let out = ok(&professional, &["subject", "relations", &child]);
    assert_eq!(
        out.trim(),
        format!("{parent} is guardian of {child} (source: court-order)"),
        "{out}"
    );
    let out = ok(&team, &["subject", "family", &child]);
    assert!(out.contains(&parent), "{out}");

    // jurisdiction: a team without municipalities, or of another one, sees no subject at all
    for outsider in [&team_without, &team_elsewhere] {
        let err = fails(outsider, &["subject", "get", &child]);
        assert!(err.contains("NotFound"), "{err}");
        let err = fails(outsider, &["subject", "relations", &child]);
        assert!(err.contains("NotFound"), "{err}");
    }

    // unlink: coordinators only, with a reason from the list
    let unlink = |reason: &str| {
        vec![
            "subject".to_owned(),
            "unlink".to_owned(),
            "--parent".to_owned(),
            parent.clone(),
            "--child".to_owned(),
            child.clone(),
            "--reason".to_owned(),
            reason.to_owned(),
        ]
    };
    let err = fails(&team, &strs(&unlink("bored")));
    assert!(
        err.contains("recorded-in-error, wrong-person, source-corrected, custody-ended"),
        "{err}"
    );
    let err = fails(&professional, &strs(&unlink("wrong-person")));
    assert!(err.contains("PermissionDenied"), "{err}");
    let err = fails(&team_elsewhere, &strs(&unlink("wrong-person")));
    assert!(err.contains("NotFound"), "{err}");
    let mut retried = unlink("wrong-person");
    retried.extend(["--request-id".to_owned(), "unlink-mila-1".to_owned()]);
    let out = ok(&team, &strs(&retried));
    assert_eq!(field(&out, "parent"), parent, "{out}");
    assert_eq!(field(&out, "child"), child, "{out}");
    assert_eq!(field(&out, "source"), "court-order", "{out}");
    assert_eq!(field(&out, "status"), "removed", "{out}");
    assert_eq!(field(&out, "reason"), "wrong-person", "{out}");
    // a retry with the same request id gives the first answer; a new one finds nothing to remove
    let again = ok(&team, &strs(&retried));
    assert_eq!(field(&again, "parent"), parent, "{again}");
    let err = fails(&team, &strs(&unlink("wrong-person")));
    assert!(err.contains("NotFound"), "{err}");
    let out = ok(&professional, &["subject", "relations", &child]);
    assert_eq!(out.trim(), "no relations", "{out}");

    // a suite service resolves an unknown BSN into a new subject of a municipality
    let err = fails(
        &service,
        &[
            "subject",
            "resolve",
            "--bsn",
            &numbers[2],
            "--municipality",
            "GM0363",
        ],
    );
    assert!(err.contains("--create"), "{err}");
    let err = fails(
        &service,
        &[
            "subject",
            "resolve",
            "--bsn",
            &numbers[2],
            "--create",
            "--municipality",
            "Amsterdam",
        ],
    );
    assert!(err.contains("GM followed by 4 digits"), "{err}");
    let resolve = [
        "subject",
        "resolve",
        "--bsn",
        &numbers[2],
        "--create",
        "--municipality",
        "gm0363",
        "--birth-date",
        "2019-01-02",
    ];
    let out = ok(&service, &resolve);
    assert_eq!(field(&out, "created"), "yes", "{out}");
    assert_eq!(field(&out, "birth_date"), "2019-01-02", "{out}");
    let lookup_ref = field(&out, "lookup_ref");
    assert!(uuid::Uuid::parse_str(&lookup_ref).is_ok(), "{out}");
    let created = subject_id_of(&out);
    let again = ok(&service, &resolve);
    assert_eq!(field(&again, "created"), "no", "{again}");
    assert_eq!(field(&again, "lookup_ref"), lookup_ref, "{again}");
    assert_eq!(subject_id_of(&again), created, "{again}");
    let out = ok(&professional, &["subject", "get", &created]);
    assert_eq!(field(&out, "municipality"), "GM0363", "{out}");
    assert_eq!(field(&out, "birth_date"), "2019-01-02", "{out}");

    // a date of death needs a coordinator
    let err = fails(
        &professional,
        &[
            "subject",
            "update",
            &parent,
            "--date-of-death",
            "2026-01-05",
        ],
    );
    assert!(err.contains("PermissionDenied"), "{err}");
    let out = ok(
        &coordinator,
        &[
            "subject",
            "update",
            &parent,
            "--date-of-death",
            "2026-01-05",
        ],
    );
    assert_eq!(field(&out, "date_of_death"), "2026-01-05", "{out}");

    stop_up(&mut up, &data);
}

/// Connects to the private cluster (only with the generated superuser password: a login without
/// it is refused), takes intake's runtime role and tries to change its audit log.
fn runtime_role_cannot_rewrite_the_audit(port: u16, data: &Path) {
    use sqlx::{Connection, Executor};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let options = sqlx::postgres::PgConnectOptions::new()
            .host("127.0.0.1")
            .port(port)
            .database("zvv");
        for user in ["postgres", "zvv_intake"] {
            let refused = sqlx::PgConnection::connect_with(&options.clone().username(user)).await;
            assert!(refused.is_err(), "{user} logged in without a password");
        }
        let secret_file = data.join("pg").join("zvv-superuser.secret");
        assert_eq!(
            fs::metadata(&secret_file).expect("secret file").permissions().mode() & 0o777,
            0o600
        );
        let secret = fs::read_to_string(&secret_file).expect("superuser secret");
        let mut conn = sqlx::PgConnection::connect_with(
            &options.clone().username("postgres").password(secret.trim()),
        )
        .await
        .expect("connect with the generated password");
        conn.execute("SET ROLE zvv_intake").await.expect("take the runtime role");
        let owner: String = sqlx::query_scalar(
            "SELECT tableowner::text FROM pg_tables WHERE schemaname = 'intake' AND tablename = 'audit_entries'",
        )
        .fetch_one(&mut conn)
        .await
        .expect("owner");
        assert_eq!(owner, "zvv_intake_owner");
        for sql in [
            "UPDATE intake.audit_entries SET result = 'OK'",
            "DELETE FROM intake.audit_seals",
            "TRUNCATE intake.audit_entries",
            "ALTER TABLE intake.audit_entries DISABLE TRIGGER ALL",
        ] {
            let err = conn.execute(sql).await.expect_err(sql);
            let code = err.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned());
            assert_eq!(code.as_deref(), Some("42501"), "{sql}: {err}");
        }
        conn.close().await.expect("close");
    });
}
