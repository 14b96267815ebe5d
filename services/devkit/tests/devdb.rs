//! The private PostgreSQL cluster: create, start, query, stop, restart.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::{Connection, PgConnection};
use zvv_devkit::devdb::{ClusterOptions, DevDbError, LocalCluster, PgBinaries};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const THROWAWAY: ClusterOptions = ClusterOptions {
    port: None,
    durable: false,
};

/// A temp dir the `postgres` OS user (used when running as root) can enter, and the data
/// directory inside it.
fn temp_data_dir() -> std::io::Result<(tempfile::TempDir, PathBuf)> {
    let temp = tempfile::TempDir::new()?;
    std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o755))?;
    let data_dir = temp.path().join("pgdata");
    Ok((temp, data_dir))
}

/// TCP options for the superuser of `cluster` with the given password, or none.
fn superuser_over_tcp(cluster: &LocalCluster, password: Option<&str>) -> PgConnectOptions {
    let options = PgConnectOptions::new_without_pgpass()
        .host("127.0.0.1")
        .port(cluster.port())
        .username("postgres")
        .database("postgres")
        .ssl_mode(PgSslMode::Disable);
    match password {
        Some(password) => options.password(password),
        None => options,
    }
}

/// Asserts the server refuses `options` as an authentication failure.
async fn assert_refused(options: &PgConnectOptions, what: &str) {
    match PgConnection::connect_with(options).await {
        Ok(_) => panic!("{what}: connected"),
        Err(sqlx::Error::Database(e)) => {
            let code = e.code();
            assert!(
                matches!(code.as_deref(), Some("28P01" | "28000")),
                "{what}: unexpected SQLSTATE {code:?}: {e}"
            );
        }
        Err(e) => panic!("{what}: expected an authentication error, got {e}"),
    }
}

fn mode(path: &Path) -> std::io::Result<u32> {
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o777)
}

fn read_secret(cluster: &LocalCluster) -> std::io::Result<String> {
    Ok(std::fs::read_to_string(cluster.secret_file())?
        .trim()
        .to_owned())
}

/// What `pg_hba.conf` looked like in clusters created with trust authentication.
const OLD_TRUST_HBA: &str = "\
# TYPE  DATABASE        USER            ADDRESS                 METHOD
local   all             all                                     trust
host    all             all             127.0.0.1/32            trust
host    all             all             ::1/128                 trust
local   replication     all                                     trust
host    replication     all             127.0.0.1/32            trust
host    replication     all             ::1/128                 trust
";

/// Turns the (stopped or running) cluster in `data_dir` into one as earlier versions made it:
/// trust authentication and no secret file.
fn make_it_trusting(data_dir: &Path) -> std::io::Result<()> {
    // Written in place: the file keeps its owner.
    std::fs::write(data_dir.join("pg_hba.conf"), OLD_TRUST_HBA)?;
    std::fs::remove_file(data_dir.join("zvv-superuser.secret"))
}

async fn assert_hardened(cluster: &LocalCluster) -> TestResult {
    let hba = std::fs::read_to_string(cluster.data_dir().join("pg_hba.conf"))?;
    let trusting: Vec<&str> = hba
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter(|line| line.split_whitespace().any(|field| field == "trust"))
        .collect();
    assert!(trusting.is_empty(), "trust lines left: {trusting:?}");
    assert_eq!(mode(&cluster.secret_file())?, 0o600);
    assert_refused(&superuser_over_tcp(cluster, None), "no password").await;
    let conn = PgConnection::connect_with(&cluster.connect_options("postgres")).await?;
    conn.close().await?;
    Ok(())
}

#[tokio::test]
async fn throwaway_cluster_starts_serves_and_restarts() -> Result<(), Box<dyn std::error::Error>> {
    // Let the `postgres` OS user (used when running as root) enter the temp dir.
    let temp = tempfile::TempDir::new()?;
    std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o755))?;
    let data_dir = temp.path().join("pgdata");
    let options = ClusterOptions {
        port: None,
        durable: false,
    };

    let mut cluster = LocalCluster::start(&data_dir, options).await?;
    let port = cluster.port();
    assert_ne!(port, 0);
    assert!(cluster.data_dir().join("PG_VERSION").is_file());
    assert!(cluster.data_dir().join("postgres.log").is_file());

    cluster.create_database("devdb_test").await?;
    // Creating it again is a no-op.
    cluster.create_database("devdb_test").await?;
    assert!(matches!(
        cluster.create_database("Bad-Name").await,
        Err(DevDbError::InvalidDatabaseName(_))
    ));

    let mut conn = PgConnection::connect_with(&cluster.connect_options("devdb_test")).await?;
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut conn).await?;
    assert_eq!(one, 1);
    let listen: String = sqlx::query_scalar("SHOW listen_addresses")
        .fetch_one(&mut conn)
        .await?;
    assert_eq!(listen, "127.0.0.1");
    let fsync: String = sqlx::query_scalar("SHOW fsync")
        .fetch_one(&mut conn)
        .await?;
    assert_eq!(fsync, "off");
    conn.close().await?;

    cluster.stop()?;
    // Stopping twice is fine.
    cluster.stop()?;
    assert!(
        PgConnection::connect_with(&cluster.connect_options("devdb_test"))
            .await
            .is_err()
    );
    drop(cluster);

    // Same directory again: no initdb, same port, data kept.
    let mut cluster = LocalCluster::start(&data_dir, options).await?;
    assert_eq!(cluster.port(), port);
    let mut conn = PgConnection::connect_with(&cluster.connect_options("devdb_test")).await?;
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut conn).await?;
    assert_eq!(one, 1);
    conn.close().await?;
    cluster.stop()?;

    Ok(())
}

#[test]
fn binaries_are_installed() -> Result<(), DevDbError> {
    let binaries = PgBinaries::locate()?;
    for name in ["initdb", "pg_ctl", "postgres"] {
        assert!(
            binaries.binary(name).is_file(),
            "{name} missing in {}",
            binaries.bin_dir.display()
        );
    }
    Ok(())
}

#[tokio::test]
async fn only_the_generated_password_gets_in() -> TestResult {
    let (temp, data_dir) = temp_data_dir()?;
    let mut cluster = LocalCluster::start(&data_dir, THROWAWAY).await?;

    // The secret: 32 hex characters, readable by the owner only, inside the 0700 data dir.
    let secret_file = cluster.secret_file();
    assert!(secret_file.starts_with(cluster.data_dir()));
    assert_eq!(mode(&secret_file)?, 0o600);
    assert_eq!(mode(cluster.data_dir())?, 0o700);
    let password = read_secret(&cluster)?;
    assert_eq!(password.len(), 32);
    assert!(password.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(!format!("{cluster:?}").contains(&password));
    // No initdb password file left behind next to the data dir.
    let leftovers: Vec<_> = std::fs::read_dir(temp.path())?
        .filter_map(Result::ok)
        .map(|entry| entry.file_name())
        .filter(|name| name != "pgdata")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // TCP: refused without a password and with a wrong one.
    assert_refused(&superuser_over_tcp(&cluster, None), "no password").await;
    assert_refused(
        &superuser_over_tcp(&cluster, Some("not-the-password")),
        "wrong password",
    )
    .await;

    // With connect_options, and with the URL, it works.
    let mut conn = PgConnection::connect_with(&cluster.connect_options("postgres")).await?;
    let encryption: String = sqlx::query_scalar("SHOW password_encryption")
        .fetch_one(&mut conn)
        .await?;
    assert_eq!(encryption, "scram-sha-256");
    let socket_permissions: String = sqlx::query_scalar("SHOW unix_socket_permissions")
        .fetch_one(&mut conn)
        .await?;
    assert_eq!(socket_permissions, "0700");
    let hba_methods: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT auth_method FROM pg_hba_file_rules")
            .fetch_all(&mut conn)
            .await?;
    assert_eq!(hba_methods, ["scram-sha-256"]);

    // A role created with a password logs in over TCP.
    sqlx::query("CREATE ROLE devdb_app LOGIN PASSWORD 'app-password'")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    let app = superuser_over_tcp(&cluster, Some("app-password")).username("devdb_app");
    PgConnection::connect_with(&app).await?.close().await?;

    let url = cluster.url("postgres");
    assert!(url.contains(&password));
    PgConnection::connect(&url).await?.close().await?;

    // The unix socket: in the 0700 data dir, itself 0700, and it wants the password too.
    let socket = cluster
        .data_dir()
        .join(format!(".s.PGSQL.{}", cluster.port()));
    assert!(std::fs::metadata(&socket)?.file_type().is_socket());
    assert_eq!(mode(&socket)?, 0o700);
    let over_socket = PgConnectOptions::new_without_pgpass()
        .socket(cluster.data_dir())
        .port(cluster.port())
        .username("postgres")
        .database("postgres");
    assert_refused(&over_socket, "socket without password").await;
    PgConnection::connect_with(&over_socket.clone().password(&password))
        .await?
        .close()
        .await?;

    // Restarting keeps the password.
    cluster.stop()?;
    drop(cluster);
    let mut cluster = LocalCluster::start(&data_dir, THROWAWAY).await?;
    assert_eq!(read_secret(&cluster)?, password);
    PgConnection::connect_with(&cluster.connect_options("postgres"))
        .await?
        .close()
        .await?;
    cluster.stop()?;
    Ok(())
}

#[tokio::test]
async fn old_trusting_cluster_is_upgraded_on_start() -> TestResult {
    let (_temp, data_dir) = temp_data_dir()?;
    let mut cluster = LocalCluster::start(&data_dir, THROWAWAY).await?;
    cluster.create_database("devdb_kept").await?;
    let old_password = read_secret(&cluster)?;
    cluster.stop()?;
    drop(cluster);
    make_it_trusting(&data_dir)?;

    let mut cluster = LocalCluster::start(&data_dir, THROWAWAY).await?;
    assert_hardened(&cluster).await?;
    let new_password = read_secret(&cluster)?;
    assert_ne!(new_password, old_password);
    assert_refused(
        &superuser_over_tcp(&cluster, Some(&old_password)),
        "old password",
    )
    .await;
    // The data survived.
    PgConnection::connect_with(&cluster.connect_options("devdb_kept"))
        .await?
        .close()
        .await?;
    cluster.stop()?;
    Ok(())
}

#[tokio::test]
async fn running_trusting_cluster_is_restarted_with_a_password() -> TestResult {
    let (_temp, data_dir) = temp_data_dir()?;
    let first = LocalCluster::start(&data_dir, THROWAWAY).await?;
    make_it_trusting(&data_dir)?;
    let mut conn = PgConnection::connect_with(&first.connect_options("postgres")).await?;
    sqlx::query("SELECT pg_reload_conf()")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    // The running server now trusts TCP, as clusters of earlier versions did.
    PgConnection::connect_with(&superuser_over_tcp(&first, None))
        .await?
        .close()
        .await?;
    // The next start stops and upgrades it; the first handle must not stop it again.
    std::mem::forget(first);

    let mut cluster = LocalCluster::start(&data_dir, THROWAWAY).await?;
    assert_hardened(&cluster).await?;
    cluster.stop()?;
    Ok(())
}

#[tokio::test]
async fn a_wrong_secret_is_reported_at_once() -> TestResult {
    let (_temp, data_dir) = temp_data_dir()?;
    let mut cluster = LocalCluster::start(&data_dir, THROWAWAY).await?;
    let secret_file = cluster.secret_file();
    cluster.stop()?;
    drop(cluster);
    std::fs::write(&secret_file, "0123456789abcdef0123456789abcdef\n")?;

    let started = std::time::Instant::now();
    match LocalCluster::start(&data_dir, THROWAWAY).await {
        Err(e @ DevDbError::PasswordRejected { .. }) => {
            let message = e.to_string();
            assert!(message.contains("zvv-superuser.secret"), "{message}");
            assert!(!message.contains("0123456789abcdef"), "{message}");
        }
        other => panic!("expected PasswordRejected, got {other:?}"),
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(20));

    // Removing the secret resets the password.
    std::fs::remove_file(&secret_file)?;
    let mut cluster = LocalCluster::start(&data_dir, THROWAWAY).await?;
    assert_hardened(&cluster).await?;
    cluster.stop()?;
    Ok(())
}
