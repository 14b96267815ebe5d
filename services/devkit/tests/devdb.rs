//! The private PostgreSQL cluster: create, start, query, stop, restart.

use std::os::unix::fs::PermissionsExt;

use sqlx::{Connection, PgConnection};
use zvv_devkit::devdb::{ClusterOptions, DevDbError, LocalCluster, PgBinaries};

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
