//! The `zvv` binary as a person uses it: `zvv token`, argument errors, and one end-to-end run of
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

use common::{Up, free_port, text, zvv};
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
        ])
        .args(["--sub", "signalling", "--data-dir"])
        .arg(dir.path()));
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let jwt = stdout.lines().last().expect("a last line").trim();
    let verifier =
        TokenVerifier::from_files(&[public], None, "zvv-dev", "zvv", 10).expect("verifier");
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
    assert!(stderr.contains("known services: intake"), "{stderr}");
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
    assert!(
        data.join("tokens/intake.token").is_file(),
        "service token written"
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
