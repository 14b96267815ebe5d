//! `zvv keys`: show the key ids of a data folder and its database, rotate the BSN encryption key,
//! re-encrypt the subjects, and refuse a key file that does not belong to the database.

mod common;

use std::{fs, net::SocketAddr, os::unix::fs::PermissionsExt, path::Path, time::Duration};

use common::{Up, free_port, mint, text, zvv};

fn keys(args: &[&str], data: &Path) -> (bool, String, String) {
    let out = zvv()
        .arg("keys")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("zvv keys runs");
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

fn stop(up: &mut Up) {
    let status = up.terminate();
    let log = up.log();
    let status = status.unwrap_or_else(|| panic!("zvv up did not exit within 30 s:\n{log}"));
    assert!(status.success(), "zvv up exited with {status}:\n{log}");
}

/// The line of `show` output about `key_id` under `purpose` in the database part.
fn recorded_line<'a>(show: &'a str, purpose: &str, key_id: &str) -> &'a str {
    show.lines()
        .skip_while(|l| !l.starts_with("recorded in"))
        .find(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words.get(1) == Some(&purpose) && words.get(2) == Some(&key_id)
        })
        .unwrap_or_else(|| panic!("no recorded line for {purpose} {key_id} in:\n{show}"))
}

#[test]
fn keys_are_shown_rotated_and_reencrypted_and_a_foreign_key_file_is_refused() {
    let tmp = tempfile::tempdir().expect("temp dir");
    // As root, PostgreSQL runs as the `postgres` user, who must be able to enter the folder.
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let data = tmp.path().join("data");
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port())
        .parse()
        .expect("address");
    let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let mut up = Up::start(&data, listen, any, &tmp.path().join("up.log"));
    up.wait_for_port(listen, Duration::from_secs(90));
    let token = mint(&data, "gm0363", "MUNICIPALITY", "PROFESSIONAL", &[]);
    let addr = format!("http://{listen}");
    let call = |args: &[&str]| {
        let out = zvv()
            .args(args)
            .env("ZVV_TOKEN", &token)
            .env("ZVV_INTAKE_ADDR", &addr)
            .output()
            .expect("zvv runs");
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let registered = call(&[
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
    ]);
    let subject_id = registered
        .lines()
        .find_map(|l| l.strip_prefix("subject_id:"))
        .map(|id| id.trim().to_owned())
        .unwrap_or_else(|| panic!("no subject_id in:\n{registered}"));
    // rotation changes the key file: not while `zvv up` runs
    let (ok, _, stderr) = keys(&["rotate"], &data);
    assert!(!ok, "rotated while zvv up runs");
    assert!(stderr.contains("stop it first"), "{stderr}");
    stop(&mut up);

    // show: ids only, never key material
    let key_file = data.join("keys/bsn-keys.json");
    let secrets: Vec<String> = {
        let json: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&key_file).expect("key file")).expect("json");
        let mut s: Vec<String> = json["encryption_keys"]
            .as_object()
            .expect("keys")
            .values()
            .map(|v| v.as_str().expect("b64").to_owned())
            .collect();
        s.push(json["hmac_key"].as_str().expect("b64").to_owned());
        s.push(
            fs::read_to_string(data.join("keys/signalling-fingerprint.key"))
                .expect("fingerprint key")
                .trim()
                .to_owned(),
        );
        s.push(
            fs::read_to_string(data.join("keys/notifications-secrets.key"))
                .expect("notifications secret key")
                .trim()
                .to_owned(),
        );
        s
    };
    let (ok, show, stderr) = keys(&["show"], &data);
    assert!(ok, "show: {stderr}");
    for part in [
        "bsn-encryption",
        "dev-1",
        "active",
        "bsn-lookup",
        "lookup-1",
        "fingerprint-1",
        "subscription-secrets",
        "secrets-1",
    ] {
        assert!(show.contains(part), "{part:?} in:\n{show}");
    }
    for secret in &secrets {
        assert!(!show.contains(secret.as_str()), "key material in:\n{show}");
    }

    // rotate: dev-2 active, dev-1 kept, recorded in the database
    let (ok, out, stderr) = keys(&["rotate"], &data);
    assert!(ok, "rotate: {stderr}");
    assert!(out.contains("added BSN encryption key dev-2"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&key_file).expect("key file")).expect("json");
    assert_eq!(json["active_key_id"], "dev-2");
    assert!(json["encryption_keys"]["dev-1"].is_string(), "dev-1 kept");
    assert_eq!(
        fs::metadata(&key_file).expect("meta").permissions().mode() & 0o777,
        0o600
    );
    let (ok, show, stderr) = keys(&["show"], &data);
    assert!(ok, "show: {stderr}");
    let line = recorded_line(&show, "bsn-encryption", "dev-2");
    assert!(line.contains("matches the key file"), "{show}");
    assert!(line.contains("0 subjects"), "{show}");
    assert!(
        recorded_line(&show, "bsn-encryption", "dev-1").contains("1 subjects"),
        "{show}"
    );

    // re-encrypt: every subject on dev-2
    let (ok, out, stderr) = keys(&["reencrypt", "--batch-size", "10"], &data);
    assert!(ok, "reencrypt: {stderr}");
    assert!(
        out.contains("re-encrypted 1 subjects with key dev-2"),
        "{out}"
    );
    let (_, show, _) = keys(&["show"], &data);
    assert!(
        recorded_line(&show, "bsn-encryption", "dev-2").contains("1 subjects"),
        "{show}"
    );
    assert!(
        recorded_line(&show, "bsn-encryption", "dev-1").contains("0 subjects"),
        "{show}"
    );

    // a key file from another data folder is refused, naming the recorded key ids
    let kept = fs::read_to_string(&key_file).expect("key file");
    fs::write(
        &key_file,
        serde_json::to_string(&zvv_platform::bsn::KeyFile::generate()).expect("json"),
    )
    .expect("foreign key file");
    let (ok, _, stderr) = keys(&["reencrypt"], &data);
    assert!(!ok, "re-encrypted with a foreign key file");
    for part in [
        "bsn-encryption key \"dev-1\" is not the key recorded under that id",
        "expected (recorded in intake.service_keys): bsn-encryption \"dev-1\", bsn-encryption \"dev-2\", bsn-lookup \"lookup-1\"",
        "Restore the key file",
    ] {
        assert!(stderr.contains(part), "{part:?} in:\n{stderr}");
    }
    let (_, show, _) = keys(&["show"], &data);
    assert!(
        recorded_line(&show, "bsn-lookup", "lookup-1").contains("DIFFERS"),
        "{show}"
    );
    // `zvv up` refuses to start with it too, naming the expected key ids, and never listens
    let mut refused = Up::start(&data, listen, any, &tmp.path().join("up-foreign.log"));
    let status = refused
        .wait_for_exit(Duration::from_secs(90))
        .unwrap_or_else(|| {
            panic!(
                "zvv up kept running with a foreign key file:\n{}",
                refused.log()
            )
        });
    let log = refused.log();
    assert!(!status.success(), "{log}");
    for part in [
        "do not belong to this database",
        "bsn-encryption key \"dev-1\" is not the key recorded under that id",
        "bsn-encryption \"dev-1\", bsn-encryption \"dev-2\", bsn-lookup \"lookup-1\"",
    ] {
        assert!(log.contains(part), "{part:?} in:\n{log}");
    }
    assert!(
        std::net::TcpStream::connect_timeout(&listen, Duration::from_millis(300)).is_err(),
        "intake listened with a foreign key file"
    );
    fs::write(&key_file, kept).expect("restore the key file");

    // and the suite reads the subject with the rotated keys
    let mut up = Up::start(&data, listen, any, &tmp.path().join("up-2.log"));
    up.wait_for_port(listen, Duration::from_secs(90));
    let shown = call(&["subject", "get", &subject_id]);
    assert!(shown.contains("******782"), "{shown}");
    stop(&mut up);
}
