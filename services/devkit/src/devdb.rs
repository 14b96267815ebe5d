//! A private PostgreSQL cluster built from the machine's PostgreSQL server binaries.
//!
//! `zvv up` keeps a persistent cluster under its data folder; the test harness makes a
//! throwaway one in a temporary directory. Either way the cluster listens on `127.0.0.1`
//! only, has the superuser `postgres`, and keeps its unix socket inside the data directory.
//!
//! Only the owner of the data directory can reach the cluster:
//!
//! - Every connection, over TCP and over the unix socket, authenticates with SCRAM-SHA-256;
//!   nothing is trusted. The superuser password is generated (32 hex characters) when the
//!   cluster is created and kept in `zvv-superuser.secret` inside the data directory, mode
//!   `0600`. The data directory itself is `0700` (PostgreSQL insists), so only its OS owner
//!   (and root) can read the secret. [`LocalCluster::connect_options`] and [`LocalCluster::url`]
//!   carry the password.
//! - The unix socket lives in the data directory with `unix_socket_permissions = 0700`. Local
//!   connections still need the password, so a server started by hand with the default socket
//!   directory is no easier to reach.
//! - `password_encryption` is `scram-sha-256`, so roles created with a password log in over TCP.
//!
//! Clusters created by earlier versions trusted every local connection. [`LocalCluster::start`]
//! upgrades them before they listen on TCP again: it stops the server if it runs, sets a freshly
//! generated superuser password in single-user mode (no listening server involved), writes the
//! secret file, and changes every `trust` line of `pg_hba.conf` to `scram-sha-256`. The same
//! happens when the secret file has gone missing: the password is reset.
//!
//! `initdb` and `postgres` refuse to run as root. When this process is root, every PostgreSQL
//! binary runs as the `postgres` OS user (`runuser -u postgres -- ...`), which then owns the data
//! directory. That user must be able to traverse every parent of the data directory (for example
//! a `tempfile::TempDir`, which is created `0700`, must be made `0755` first); [`LocalCluster::start`]
//! checks this early and says so.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};

/// OS user that runs the PostgreSQL binaries when this process is root.
const POSTGRES_OS_USER: &str = "postgres";
/// Database superuser created by `initdb`.
const SUPERUSER: &str = "postgres";
/// Address the cluster listens on.
const LISTEN_ADDRESS: &str = "127.0.0.1";
/// File in the data directory that remembers the cluster's port between runs.
const PORT_FILE: &str = "zvv-port";
/// Server log file in the data directory.
const LOG_FILE: &str = "postgres.log";
/// Where distribution packages (Debian, Ubuntu) install versioned server binaries.
const VERSIONED_BIN_ROOT: &str = "/usr/lib/postgresql";
/// Seconds `pg_ctl` waits for the server to start or stop.
const PG_CTL_TIMEOUT_SECS: u64 = 60;
/// How long [`LocalCluster::start`] waits for the server to accept connections.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest unix socket path the kernel accepts (`sun_path` minus the terminating NUL).
const MAX_SOCKET_PATH: usize = 107;
/// Attempts with a freshly picked port when another process grabs it first.
const PORT_ATTEMPTS: usize = 3;
/// Environment variables that must not redirect the PostgreSQL tools.
const ENV_TO_CLEAR: [&str; 6] = [
    "PGDATA",
    "PGPORT",
    "PGHOST",
    "PGUSER",
    "PGDATABASE",
    "PGOPTIONS",
];
/// Lines of the server log quoted in a start failure.
const LOG_TAIL_LINES: usize = 30;
/// File in the data directory holding the superuser password (mode `0600`).
const SECRET_FILE: &str = "zvv-superuser.secret";
/// Bytes of randomness in a generated superuser password (hex-encoded: twice as many characters).
const SECRET_BYTES: usize = 16;
/// The client authentication file `initdb` writes in the data directory.
const HBA_FILE: &str = "pg_hba.conf";
/// The only authentication method the cluster accepts.
const AUTH_METHOD: &str = "scram-sha-256";
/// Permissions of the unix socket (owner only).
const SOCKET_PERMISSIONS: &str = "0700";

/// Why the development cluster could not be set up, started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DevDbError {
    /// No usable PostgreSQL server binaries on this machine.
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under {VERSIONED_BIN_ROOT}/*/bin: install them, e.g. `apt-get install postgresql`"
    )]
    NotInstalled,
    /// A file system or process-spawning operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An external command exited unsuccessfully.
    #[error("`{command}` failed ({status}): {output}")]
    Command {
        /// The command line, for the reader.
        command: String,
        /// How it exited.
        status: ExitStatus,
        /// Its trimmed stderr and stdout.
        output: String,
    },
    /// The `postgres` OS user cannot reach the data directory.
    #[error(
        "the `{POSTGRES_OS_USER}` OS user cannot traverse {}: every parent of the data directory must be traversable by it (e.g. `chmod 0755` it)",
        dir.display()
    )]
    NotTraversable {
        /// The directory the `postgres` user cannot enter.
        dir: PathBuf,
    },
    /// The data directory holds something other than a PostgreSQL cluster.
    #[error(
        "{} is neither empty nor a PostgreSQL data directory (no PG_VERSION): refusing to use it",
        dir.display()
    )]
    NotACluster {
        /// The data directory.
        dir: PathBuf,
    },
    /// The server did not start; `log_tail` is the end of what it logged meanwhile.
    #[error("PostgreSQL in {} failed to start on port {port}: {reason}\n--- {LOG_FILE} (tail) ---\n{log_tail}", data_dir.display())]
    StartFailed {
        /// The data directory.
        data_dir: PathBuf,
        /// The port it was asked to listen on.
        port: u16,
        /// What went wrong (usually pg_ctl's own message).
        reason: String,
        /// The last lines of the server log written by this start attempt.
        log_tail: String,
    },
    /// A database name outside `[a-z0-9_]{1,63}`.
    #[error("invalid database name {0:?}: use 1 to 63 characters from [a-z0-9_]")]
    InvalidDatabaseName(String),
    /// The cluster rejected the superuser password kept in the secret file.
    #[error(
        "the cluster in {} rejected the superuser password in {}: remove that file and start again to reset the password",
        data_dir.display(),
        secret_file.display()
    )]
    PasswordRejected {
        /// The data directory.
        data_dir: PathBuf,
        /// The file holding the superuser password.
        secret_file: PathBuf,
    },
    /// A SQL statement against the cluster failed.
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
}

impl DevDbError {
    fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// Where the PostgreSQL server binaries (`initdb`, `pg_ctl`, `postgres`) live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgBinaries {
    /// The real (symlink-resolved) directory holding the binaries.
    pub bin_dir: PathBuf,
}

impl PgBinaries {
    /// Finds `initdb` and `pg_ctl` on `PATH` (resolving symlinks to the real bin directory),
    /// else the highest version under `/usr/lib/postgresql/*/bin`.
    pub fn locate() -> Result<Self, DevDbError> {
        let from_path = std::env::var_os("PATH")
            .into_iter()
            .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
            .filter_map(|dir| std::fs::canonicalize(dir.join("initdb")).ok())
            .filter_map(|initdb| initdb.parent().map(Path::to_path_buf))
            .find(|dir| Self::complete(dir));
        if let Some(bin_dir) = from_path {
            tracing::debug!(bin_dir = %bin_dir.display(), "found postgresql binaries on path");
            return Ok(Self { bin_dir });
        }

        let mut versioned: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(VERSIONED_BIN_ROOT)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let version = parse_version(entry.file_name().to_str()?)?;
                let bin_dir = std::fs::canonicalize(entry.path().join("bin")).ok()?;
                Self::complete(&bin_dir).then_some((version, bin_dir))
            })
            .collect();
        versioned.sort();
        match versioned.pop() {
            Some((_, bin_dir)) => {
                tracing::debug!(bin_dir = %bin_dir.display(), "found versioned postgresql binaries");
                Ok(Self { bin_dir })
            }
            None => Err(DevDbError::NotInstalled),
        }
    }

    /// Uses the binaries in `bin_dir`, checking that `initdb`, `pg_ctl` and `postgres` are there.
    pub fn in_dir(bin_dir: &Path) -> Result<Self, DevDbError> {
        let bin_dir = std::fs::canonicalize(bin_dir)
            .map_err(|e| DevDbError::io(format!("resolving {}", bin_dir.display()), e))?;
        if Self::complete(&bin_dir) {
            Ok(Self { bin_dir })
        } else {
            Err(DevDbError::NotInstalled)
        }
    }

    /// Path of the binary `name` in [`Self::bin_dir`].
    pub fn binary(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    fn complete(dir: &Path) -> bool {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|name| is_executable(&dir.join(name)))
    }
}

/// How to run a [`LocalCluster`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterOptions {
    /// Port to listen on; `None` reuses the port remembered in the data directory, or picks a
    /// free one.
    pub port: Option<u16>,
    /// `false` turns off `fsync`, `synchronous_commit` and `full_page_writes` (and syncing in
    /// `initdb`): fast, and fine for throwaway test clusters; a crash may corrupt the data.
    pub durable: bool,
}

impl Default for ClusterOptions {
    /// A durable cluster on the remembered or a free port.
    fn default() -> Self {
        Self {
            port: None,
            durable: true,
        }
    }
}

/// A password that never shows up in `Debug` output.
#[derive(Clone, Default, PartialEq, Eq)]
struct Secret(String);

impl Secret {
    /// 32 random hex characters from the OS random source.
    fn generate() -> Self {
        use rand::RngCore;
        let mut bytes = [0u8; SECRET_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(hex::encode(bytes))
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// A running private PostgreSQL cluster; stopped on [`LocalCluster::stop`] or drop.
#[derive(Debug)]
pub struct LocalCluster {
    binaries: PgBinaries,
    runner: Runner,
    data_dir: PathBuf,
    port: u16,
    running: bool,
    password: Secret,
    durable: bool,
}

impl LocalCluster {
    /// Creates the cluster in `data_dir` on first use (initdb, superuser "postgres" with a
    /// generated password kept in the data dir, SCRAM-SHA-256 authentication for every
    /// connection, UTF8, --no-sync when !durable) and starts it listening on 127.0.0.1:<port>
    /// only, with its unix socket (mode 0700) inside the data dir. Waits until it accepts
    /// connections. A cluster already running in `data_dir` is adopted when it listens on the
    /// wanted port, and restarted otherwise.
    ///
    /// A cluster that still trusts connections (made by an earlier version) or whose secret
    /// file is gone is stopped if it runs, given a fresh superuser password and a `pg_hba.conf`
    /// without `trust`, and started again; see the module documentation.
    ///
    /// When this process is root, the `postgres` OS user must be able to traverse the parents
    /// of `data_dir`.
    pub async fn start(data_dir: &Path, options: ClusterOptions) -> Result<Self, DevDbError> {
        Self::start_with(PgBinaries::locate()?, data_dir, options).await
    }

    /// [`Self::start`] with the given binaries.
    pub async fn start_with(
        binaries: PgBinaries,
        data_dir: &Path,
        options: ClusterOptions,
    ) -> Result<Self, DevDbError> {
        let runner = Runner {
            as_postgres: running_as_root()?,
        };
        let data_dir = prepare_data_dir(&runner, data_dir).await?;
        if !data_dir.join("PG_VERSION").is_file() {
            init_cluster(&binaries, &runner, &data_dir, options.durable).await?;
        }

        let remembered = read_port_file(&data_dir)?;
        let wanted = options.port.or(remembered);
        let hardening = Hardening::inspect(&data_dir)?;
        let mut cluster = Self {
            binaries,
            runner,
            data_dir,
            port: wanted.unwrap_or(0),
            running: false,
            password: hardening.password.clone().unwrap_or_default(),
            durable: options.durable,
        };

        let already_running = cluster.status().await? == Status::Running;
        if already_running && hardening.needed() {
            let pid_file = read_pid_file(&cluster.data_dir)?;
            tracing::warn!(data_dir = %cluster.data_dir.display(), "running postgresql cluster lacks password authentication, stopping it to set a superuser password");
            cluster.port = pid_file.port.unwrap_or(cluster.port);
            cluster.running = true;
            cluster.stop()?;
        } else if already_running {
            let pid_file = read_pid_file(&cluster.data_dir)?;
            let adoptable = pid_file.listen_address.as_deref() == Some(LISTEN_ADDRESS)
                && pid_file.port.is_some()
                && (wanted.is_none() || wanted == pid_file.port);
            match pid_file.port {
                Some(port) if adoptable => {
                    tracing::info!(data_dir = %cluster.data_dir.display(), port, "adopting running postgresql cluster");
                    cluster.port = port;
                    cluster.running = true;
                }
                _ => {
                    tracing::info!(data_dir = %cluster.data_dir.display(), running_port = ?pid_file.port, wanted_port = ?wanted, "restarting running postgresql cluster");
                    cluster.port = pid_file.port.unwrap_or(cluster.port);
                    cluster.running = true;
                    cluster.stop()?;
                }
            }
        }

        if hardening.needed() {
            cluster.password = hardening
                .apply(&cluster.binaries, &cluster.runner, &cluster.data_dir)
                .await?;
        }

        if !cluster.running {
            cluster.launch(options, remembered).await?;
        }
        cluster.wait_until_accepting().await?;
        write_port_file(&cluster.data_dir, cluster.port)?;
        Ok(cluster)
    }

    /// Port the cluster listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The (canonical) data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The file holding the superuser password (mode 0600, inside the data directory).
    pub fn secret_file(&self) -> PathBuf {
        self.data_dir.join(SECRET_FILE)
    }

    /// Connect options for `database` in this cluster (host 127.0.0.1, port, user postgres with
    /// its password, no TLS).
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new_without_pgpass()
            .host(LISTEN_ADDRESS)
            .port(self.port)
            .username(SUPERUSER)
            .password(self.password.expose())
            .database(database)
            .ssl_mode(PgSslMode::Disable)
    }

    /// A `postgres://` URL for `database` in this cluster. It carries the superuser password
    /// (hex, so no escaping is needed): hand it to child processes, never to a log.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@{LISTEN_ADDRESS}:{}/{database}?sslmode=disable",
            self.password.expose(),
            self.port
        )
    }

    /// Creates the database if it does not exist yet.
    pub async fn create_database(&self, name: &str) -> Result<(), DevDbError> {
        validate_database_name(name)?;
        let mut conn = PgConnection::connect_with(&self.connect_options("postgres")).await?;
        let exists: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
                .bind(name)
                .fetch_optional(&mut conn)
                .await?;
        if exists.is_none() {
            // The name is validated above to [a-z0-9_], so quoting it is safe.
            let sql = sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\""));
            match sqlx::query(sql).execute(&mut conn).await {
                Ok(_) => tracing::info!(database = name, port = self.port, "created database"),
                // Someone else created it meanwhile.
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
                Err(e) => return Err(e.into()),
            }
        }
        conn.close().await?;
        Ok(())
    }

    /// Stops the cluster (`pg_ctl stop -m fast`), idempotent.
    pub fn stop(&mut self) -> Result<(), DevDbError> {
        self.stop_in_mode("fast")
    }

    /// Stops the cluster the way a crash does (`pg_ctl stop -m immediate`): every server
    /// process quits at once, open connections break, and the next start recovers from the
    /// WAL. For fault tests; [`Self::start_again`] brings it back on the same port.
    pub fn crash(&mut self) -> Result<(), DevDbError> {
        self.stop_in_mode("immediate")
    }

    /// Starts a cluster stopped by [`Self::stop`] or [`Self::crash`] again on its port and
    /// waits until it accepts connections.
    pub async fn start_again(&mut self) -> Result<(), DevDbError> {
        if !self.running {
            self.pg_ctl_start(self.port, self.durable).await?;
            self.running = true;
        }
        self.wait_until_accepting().await
    }

    fn stop_in_mode(&mut self, mode: &str) -> Result<(), DevDbError> {
        if !self.running {
            return Ok(());
        }
        let mut cmd = self.runner.command(&self.binaries.binary("pg_ctl"));
        cmd.arg("stop")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", mode, "-w", "-t"])
            .arg(PG_CTL_TIMEOUT_SECS.to_string());
        let output = cmd
            .output()
            .map_err(|e| DevDbError::io("running pg_ctl stop", e))?;
        if !output.status.success() {
            // Already stopped (e.g. by someone else) counts as success.
            let status = self
                .runner
                .command(&self.binaries.binary("pg_ctl"))
                .arg("status")
                .arg("-D")
                .arg(&self.data_dir)
                .output()
                .map_err(|e| DevDbError::io("running pg_ctl status", e))?;
            if Status::from_exit(&status)? != Status::Stopped {
                return Err(command_error(&cmd, &output));
            }
        }
        self.running = false;
        tracing::info!(data_dir = %self.data_dir.display(), port = self.port, mode, "stopped postgresql cluster");
        Ok(())
    }

    /// Makes sure the cluster is stopped, and `also_remove` deleted, when the current process
    /// exits, even if it is killed: spawns a detached watchdog `sh` that polls this process and
    /// then runs `pg_ctl stop -m immediate` and `rm -rf`. Meant for the test harness, whose
    /// statics are never dropped.
    pub fn stop_when_process_exits(&self, also_remove: Option<&Path>) -> Result<(), DevDbError> {
        let stop = if self.runner.as_postgres {
            format!("runuser -u {POSTGRES_OS_USER} -- \"$2\" stop -D \"$3\" -m immediate -w")
        } else {
            "\"$2\" stop -D \"$3\" -m immediate -w".to_owned()
        };
        let script = format!(
            "trap '' HUP INT TERM\n\
             while kill -0 \"$1\" 2>/dev/null; do sleep 1; done\n\
             {stop} >/dev/null 2>&1\n\
             if [ -n \"$4\" ]; then rm -rf -- \"$4\"; fi\n"
        );
        let remove = also_remove.map(Path::as_os_str).unwrap_or_default();
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("zvv-devdb-watchdog")
            .arg(std::process::id().to_string())
            .arg(self.binaries.binary("pg_ctl"))
            .arg(&self.data_dir)
            .arg(remove)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Own process group: a Ctrl-C aimed at this process does not reach the watchdog.
            .process_group(0)
            .spawn()
            .map_err(|e| DevDbError::io("spawning the cluster watchdog", e))?;
        tracing::debug!(data_dir = %self.data_dir.display(), also_remove = ?also_remove, "armed cluster watchdog");
        Ok(())
    }

    /// Starts the stopped cluster, retrying with another free port when a port this call
    /// picked itself was taken meanwhile.
    async fn launch(
        &mut self,
        options: ClusterOptions,
        remembered: Option<u16>,
    ) -> Result<(), DevDbError> {
        let (mut port, mut picked) = match (options.port, remembered) {
            (Some(port), _) => (port, false),
            (None, Some(port)) if port_is_free(port) => (port, false),
            (None, Some(port)) => {
                tracing::warn!(port, "remembered postgresql port is taken, picking another");
                (free_port()?, true)
            }
            (None, None) => (free_port()?, true),
        };
        let mut attempt = 1;
        loop {
            match self.pg_ctl_start(port, options.durable).await {
                Ok(()) => {
                    self.port = port;
                    self.running = true;
                    tracing::info!(data_dir = %self.data_dir.display(), port, durable = options.durable, "started postgresql cluster");
                    return Ok(());
                }
                Err(DevDbError::StartFailed { log_tail, .. })
                    if picked && attempt < PORT_ATTEMPTS && log_tail.contains("could not bind") =>
                {
                    tracing::debug!(port, attempt, "picked postgresql port was taken, retrying");
                    port = free_port()?;
                    picked = true;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `pg_ctl start -w` on `port`; a failure carries the log lines this attempt wrote.
    async fn pg_ctl_start(&self, port: u16, durable: bool) -> Result<(), DevDbError> {
        let log_path = self.data_dir.join(LOG_FILE);
        let log_offset = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);

        let socket_dir = self.data_dir.to_string_lossy();
        let socket_path_len = socket_dir.len() + format!("/.s.PGSQL.{port}").len();
        let socket_dir = if socket_path_len <= MAX_SOCKET_PATH {
            shell_quote(&socket_dir)
        } else {
            // Too long for a unix socket: serve TCP only (nothing here needs the socket).
            tracing::debug!(data_dir = %self.data_dir.display(), "data dir too long for a unix socket, disabling it");
            "''".to_owned()
        };
        let mut server_options = format!(
            "-p {port} -k {socket_dir} -c listen_addresses={LISTEN_ADDRESS} \
             -c unix_socket_permissions={SOCKET_PERMISSIONS} -c password_encryption={AUTH_METHOD}"
        );
        if !durable {
            server_options
                .push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }

        let mut cmd = self.runner.command(&self.binaries.binary("pg_ctl"));
        cmd.arg("start")
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&log_path)
            .arg("-o")
            .arg(&server_options)
            .args(["-w", "-t"])
            .arg(PG_CTL_TIMEOUT_SECS.to_string());
        let output = run(cmd, "running pg_ctl start").await?;
        if output.status.success() {
            return Ok(());
        }
        let reason = command_error_text(&output);
        Err(DevDbError::StartFailed {
            data_dir: self.data_dir.clone(),
            port,
            reason,
            log_tail: log_tail(&log_path, log_offset),
        })
    }

    /// Connects to the `postgres` database until it succeeds or [`CONNECT_TIMEOUT`] passes.
    async fn wait_until_accepting(&self) -> Result<(), DevDbError> {
        let options = self.connect_options("postgres");
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        loop {
            match PgConnection::connect_with(&options).await {
                Ok(conn) => {
                    conn.close().await?;
                    return Ok(());
                }
                // A wrong password does not fix itself by waiting.
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("28P01") => {
                    return Err(DevDbError::PasswordRejected {
                        data_dir: self.data_dir.clone(),
                        secret_file: self.secret_file(),
                    });
                }
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(port = self.port, error = %e, "postgresql not accepting connections yet");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Whether a server runs in the data directory (`pg_ctl status`).
    async fn status(&self) -> Result<Status, DevDbError> {
        let mut cmd = self.runner.command(&self.binaries.binary("pg_ctl"));
        cmd.arg("status").arg("-D").arg(&self.data_dir);
        let output = run(cmd, "running pg_ctl status").await?;
        Status::from_exit(&output)
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(data_dir = %self.data_dir.display(), error = %e, "failed to stop postgresql cluster");
        }
    }
}

/// Result of `pg_ctl status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Running,
    Stopped,
}

impl Status {
    fn from_exit(output: &Output) -> Result<Self, DevDbError> {
        match output.status.code() {
            Some(0) => Ok(Self::Running),
            Some(3) => Ok(Self::Stopped),
            _ => Err(DevDbError::Command {
                command: "pg_ctl status".to_owned(),
                status: output.status,
                output: command_error_text(output),
            }),
        }
    }
}

/// Runs PostgreSQL binaries directly, or as the `postgres` OS user when this process is root.
#[derive(Debug, Clone, Copy)]
struct Runner {
    as_postgres: bool,
}

impl Runner {
    fn command(&self, program: &Path) -> Command {
        let mut cmd = if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", POSTGRES_OS_USER, "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        };
        // The postgres user may not be able to enter our working directory; the PG* variables
        // must not redirect the tools elsewhere.
        cmd.current_dir("/").stdin(Stdio::null());
        for var in ENV_TO_CLEAR {
            cmd.env_remove(var);
        }
        cmd
    }
}

/// Creates `data_dir` if needed and returns its canonical path; when running as root, checks
/// the `postgres` user can reach it and hands it over.
async fn prepare_data_dir(runner: &Runner, data_dir: &Path) -> Result<PathBuf, DevDbError> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| DevDbError::io(format!("creating {}", data_dir.display()), e))?;
    let data_dir = std::fs::canonicalize(data_dir)
        .map_err(|e| DevDbError::io(format!("resolving {}", data_dir.display()), e))?;
    if runner.as_postgres {
        if let Some(parent) = data_dir.parent() {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", POSTGRES_OS_USER, "--", "test", "-x"])
                .arg(parent)
                .current_dir("/");
            let output = run(cmd, "running runuser (to check directory access)").await?;
            if !output.status.success() {
                if output.stderr.is_empty() {
                    return Err(DevDbError::NotTraversable {
                        dir: parent.to_path_buf(),
                    });
                }
                return Err(DevDbError::Command {
                    command: format!(
                        "runuser -u {POSTGRES_OS_USER} -- test -x {}",
                        parent.display()
                    ),
                    status: output.status,
                    output: command_error_text(&output),
                });
            }
        }
        let mut cmd = Command::new("chown");
        cmd.arg("-R")
            .arg(format!("{POSTGRES_OS_USER}:"))
            .arg(&data_dir);
        check(cmd, "running chown").await?;
    }
    Ok(data_dir)
}

/// Runs `initdb` in the (empty) data directory with a generated superuser password, then
/// keeps that password in the secret file.
async fn init_cluster(
    binaries: &PgBinaries,
    runner: &Runner,
    data_dir: &Path,
    durable: bool,
) -> Result<(), DevDbError> {
    let mut entries = std::fs::read_dir(data_dir)
        .map_err(|e| DevDbError::io(format!("reading {}", data_dir.display()), e))?;
    if entries.next().is_some() {
        return Err(DevDbError::NotACluster {
            dir: data_dir.to_path_buf(),
        });
    }
    tracing::info!(data_dir = %data_dir.display(), "initializing postgresql cluster");
    let password = Secret::generate();
    // initdb wants the password in a file it can read, and the data directory must be empty:
    // a temporary 0600 file, owned by whoever runs initdb, removed when this function returns.
    // As root, initdb runs as the postgres OS user, who can traverse the data dir's parent.
    let pw_dir = match data_dir.parent() {
        Some(parent) if runner.as_postgres => parent.to_path_buf(),
        _ => std::env::temp_dir(),
    };
    let mut pw_file = tempfile::Builder::new()
        .prefix(".zvv-initdb-")
        .tempfile_in(&pw_dir)
        .map_err(|e| {
            DevDbError::io(
                format!("creating a password file in {}", pw_dir.display()),
                e,
            )
        })?;
    writeln!(pw_file, "{}", password.expose())
        .and_then(|()| pw_file.flush())
        .map_err(|e| DevDbError::io("writing the initdb password file", e))?;
    if runner.as_postgres {
        let mut cmd = Command::new("chown");
        cmd.arg(format!("{POSTGRES_OS_USER}:")).arg(pw_file.path());
        check(cmd, "running chown").await?;
    }

    let mut cmd = runner.command(&binaries.binary("initdb"));
    cmd.arg("-D")
        .arg(data_dir)
        .args(["-U", SUPERUSER, "-E", "UTF8", "--locale=C"])
        // initdb's pg_hba.conf covers only the unix socket and loopback addresses; both need
        // the password.
        .arg(format!("--auth-local={AUTH_METHOD}"))
        .arg(format!("--auth-host={AUTH_METHOD}"))
        .arg("--pwfile")
        .arg(pw_file.path());
    if !durable {
        cmd.arg("--no-sync");
    }
    check(cmd, "running initdb").await?;
    pw_file
        .close()
        .map_err(|e| DevDbError::io("removing the initdb password file", e))?;
    write_secret(data_dir, &password)
}

/// What a cluster in a data directory lacks before it may listen on TCP.
#[derive(Debug)]
struct Hardening {
    /// The password in the secret file; `None` when the file is missing or empty (a cluster
    /// from an earlier version, or a lost secret): a new password must be set.
    password: Option<Secret>,
    /// `pg_hba.conf` with its `trust` lines changed to SCRAM, when it had any.
    hba: Option<String>,
}

impl Hardening {
    fn inspect(data_dir: &Path) -> Result<Self, DevDbError> {
        let hba_path = data_dir.join(HBA_FILE);
        let hba = std::fs::read_to_string(&hba_path)
            .map_err(|e| DevDbError::io(format!("reading {}", hba_path.display()), e))?;
        Ok(Self {
            password: read_secret(data_dir)?,
            hba: without_trust(&hba),
        })
    }

    fn needed(&self) -> bool {
        self.password.is_none() || self.hba.is_some()
    }

    /// Sets a new superuser password when there is none and rewrites `pg_hba.conf`; the server
    /// must be stopped. Returns the password the cluster now has.
    async fn apply(
        &self,
        binaries: &PgBinaries,
        runner: &Runner,
        data_dir: &Path,
    ) -> Result<Secret, DevDbError> {
        let password = match &self.password {
            Some(password) => password.clone(),
            None => {
                tracing::warn!(data_dir = %data_dir.display(), "postgresql cluster has no superuser password file, setting a new password");
                let password = Secret::generate();
                set_superuser_password(binaries, runner, data_dir, &password).await?;
                write_secret(data_dir, &password)?;
                password
            }
        };
        if let Some(hba) = &self.hba {
            // Written in place, so the file keeps its owner (the postgres OS user when root).
            let path = data_dir.join(HBA_FILE);
            std::fs::write(&path, hba)
                .map_err(|e| DevDbError::io(format!("writing {}", path.display()), e))?;
            tracing::warn!(path = %path.display(), "replaced trust authentication with {AUTH_METHOD}");
        }
        Ok(password)
    }
}

/// Sets the superuser password in single-user mode: no server listens meanwhile, and the
/// password travels on stdin, not on a command line.
async fn set_superuser_password(
    binaries: &PgBinaries,
    runner: &Runner,
    data_dir: &Path,
    password: &Secret,
) -> Result<(), DevDbError> {
    use tokio::io::AsyncWriteExt;

    let mut cmd = runner.command(&binaries.binary("postgres"));
    cmd.args(["--single", "-D"])
        .arg(data_dir)
        // Fail (exit status 1) on an error instead of carrying on, and never echo the statement.
        .args(["-c", "exit_on_error=on"])
        .args(["-c", "log_min_error_statement=panic"])
        .args(["-c", "log_checkpoints=off"])
        .arg("-c")
        .arg(format!("password_encryption={AUTH_METHOD}"))
        .arg(SUPERUSER)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let command = display_command(&cmd);
    tracing::debug!(%command, "running");
    let mut child = tokio::process::Command::from(cmd)
        .spawn()
        .map_err(|e| DevDbError::io("running postgres --single", e))?;
    // The password is hex, so quoting it is safe.
    let statement = format!(
        "ALTER ROLE \"{SUPERUSER}\" PASSWORD '{}';\n",
        password.expose()
    );
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(statement.as_bytes())
            .await
            .map_err(|e| DevDbError::io("writing to postgres --single", e))?;
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| DevDbError::io("running postgres --single", e))?;
    if output.status.success() {
        return Ok(());
    }
    Err(DevDbError::Command {
        command,
        status: output.status,
        output: command_error_text(&output).replace(password.expose(), "[redacted]"),
    })
}

/// `hba` with the method of every `trust` line changed to SCRAM-SHA-256, or `None` when no
/// line trusts. Comments, spacing and all other lines stay as they are.
fn without_trust(hba: &str) -> Option<String> {
    let mut changed = false;
    let mut out = String::with_capacity(hba.len());
    for line in hba.split_inclusive('\n') {
        let content = match line.find('#') {
            Some(hash) => &line[..hash],
            None => line,
        };
        let fields = fields_with_offsets(content);
        let method_index = match fields.first().map(|(_, kind)| *kind) {
            Some("local") => Some(3),
            Some("host" | "hostssl" | "hostnossl" | "hostgssenc" | "hostnogssenc") => {
                // An address without a prefix length is followed by a separate netmask.
                match fields.get(3) {
                    Some((_, address)) if address.parse::<std::net::IpAddr>().is_ok() => Some(5),
                    _ => Some(4),
                }
            }
            _ => None,
        };
        match method_index.and_then(|i| fields.get(i)) {
            Some((start, "trust")) => {
                out.push_str(&line[..*start]);
                out.push_str(AUTH_METHOD);
                out.push_str(&line[start + "trust".len()..]);
                changed = true;
            }
            _ => out.push_str(line),
        }
    }
    changed.then_some(out)
}

/// The whitespace-separated fields of `text`, each with its byte offset.
fn fields_with_offsets(text: &str) -> Vec<(usize, &str)> {
    let mut fields = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_ascii_whitespace(), start) {
            (true, Some(s)) => {
                fields.push((s, &text[s..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        fields.push((s, &text[s..]));
    }
    fields
}

/// The superuser password from the secret file; `None` when the file is missing or empty.
/// Tightens the file to 0600 if it became readable by others.
fn read_secret(data_dir: &Path) -> Result<Option<Secret>, DevDbError> {
    let path = data_dir.join(SECRET_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(DevDbError::io(format!("reading {}", path.display()), e)),
    };
    let mode = std::fs::metadata(&path)
        .map_err(|e| DevDbError::io(format!("reading {}", path.display()), e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        tracing::warn!(path = %path.display(), mode = %format!("{:o}", mode & 0o777), "superuser password file was readable by others, restricting it to its owner");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| DevDbError::io(format!("restricting {}", path.display()), e))?;
    }
    let password = text.trim();
    Ok((!password.is_empty()).then(|| Secret(password.to_owned())))
}

/// Replaces the secret file atomically with one holding `password`, mode 0600.
fn write_secret(data_dir: &Path, password: &Secret) -> Result<(), DevDbError> {
    let path = data_dir.join(SECRET_FILE);
    let context = || format!("writing {}", path.display());
    // Created 0600 by tempfile; set again so a umask or platform default cannot widen it.
    let mut file = tempfile::Builder::new()
        .prefix(".zvv-secret-")
        .tempfile_in(data_dir)
        .map_err(|e| DevDbError::io(context(), e))?;
    file.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .and_then(|()| writeln!(file, "{}", password.expose()))
        .and_then(|()| file.as_file().sync_all())
        .map_err(|e| DevDbError::io(context(), e))?;
    file.persist(&path)
        .map_err(|e| DevDbError::io(context(), e.error))?;
    Ok(())
}

/// Runs `cmd`, capturing its output.
async fn run(cmd: Command, context: &str) -> Result<Output, DevDbError> {
    tracing::debug!(command = %display_command(&cmd), "running");
    tokio::process::Command::from(cmd)
        .output()
        .await
        .map_err(|e| DevDbError::io(context, e))
}

/// Runs `cmd` and fails unless it exits successfully.
async fn check(cmd: Command, context: &str) -> Result<(), DevDbError> {
    let command = display_command(&cmd);
    let output = run(cmd, context).await?;
    if output.status.success() {
        Ok(())
    } else {
        Err(DevDbError::Command {
            command,
            status: output.status,
            output: command_error_text(&output),
        })
    }
}

fn command_error(cmd: &Command, output: &Output) -> DevDbError {
    DevDbError::Command {
        command: display_command(cmd),
        status: output.status,
        output: command_error_text(output),
    }
}

/// The trimmed stderr and stdout of a command.
fn command_error_text(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    [stderr.trim(), stdout.trim()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

fn display_command(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|arg| arg.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The last [`LOG_TAIL_LINES`] lines written to the log after byte `offset`.
fn log_tail(path: &Path, offset: u64) -> String {
    let read = || -> io::Result<String> {
        let mut file = std::fs::File::open(path)?;
        file.seek(SeekFrom::Start(offset))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
        }
        Err(e) => format!("(could not read {}: {e})", path.display()),
    }
}

/// Whether this process runs as root (effective uid 0, from `/proc/self/status`).
fn running_as_root() -> Result<bool, DevDbError> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| DevDbError::io("reading /proc/self/status", e))?;
    Ok(status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|uids| uids.split_whitespace().nth(1))
        == Some("0"))
}

/// The fields of `postmaster.pid` this module cares about.
#[derive(Debug, Default)]
struct PidFile {
    port: Option<u16>,
    listen_address: Option<String>,
}

fn read_pid_file(data_dir: &Path) -> Result<PidFile, DevDbError> {
    let path = data_dir.join("postmaster.pid");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(PidFile::default()),
        Err(e) => return Err(DevDbError::io(format!("reading {}", path.display()), e)),
    };
    // Lines: pid, data dir, start time, port, socket dir, listen address, shmem key, status.
    let lines: Vec<&str> = text.lines().collect();
    Ok(PidFile {
        port: lines.get(3).and_then(|l| l.trim().parse().ok()),
        listen_address: lines.get(5).map(|l| l.trim().to_owned()),
    })
}

fn read_port_file(data_dir: &Path) -> Result<Option<u16>, DevDbError> {
    let path = data_dir.join(PORT_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text.trim().parse().ok()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(DevDbError::io(format!("reading {}", path.display()), e)),
    }
}

fn write_port_file(data_dir: &Path, port: u16) -> Result<(), DevDbError> {
    let path = data_dir.join(PORT_FILE);
    std::fs::write(&path, format!("{port}\n"))
        .map_err(|e| DevDbError::io(format!("writing {}", path.display()), e))
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16, DevDbError> {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| DevDbError::io("picking a free port on 127.0.0.1", e))
}

fn port_is_free(port: u16) -> bool {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).is_ok()
}

fn validate_database_name(name: &str) -> Result<(), DevDbError> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(DevDbError::InvalidDatabaseName(name.to_owned()))
    }
}

/// `"15"` → `[15]`, `"9.6"` → `[9, 6]`; `None` for anything else.
fn parse_version(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Quotes `s` for `sh` (pg_ctl hands `-o` to the shell).
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names() {
        assert!(validate_database_name("zvv_intake_1").is_ok());
        assert!(validate_database_name(&"a".repeat(63)).is_ok());
        assert!(validate_database_name("").is_err());
        assert!(validate_database_name(&"a".repeat(64)).is_err());
        assert!(validate_database_name("Intake").is_err());
        assert!(validate_database_name("a\"; DROP").is_err());
    }

    #[test]
    fn versions_sort_numerically() {
        assert_eq!(parse_version("15"), Some(vec![15]));
        assert_eq!(parse_version("9.6"), Some(vec![9, 6]));
        assert_eq!(parse_version("15-beta"), None);
        assert!(parse_version("10") > parse_version("9.6"));
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn trust_lines_become_scram() {
        let old = "# TYPE  DATABASE USER ADDRESS METHOD\n\
                   local   all      all              trust\n\
                   host    all      all  127.0.0.1/32 trust  # loopback\n\
                   host    all      all  ::1/128      trust\n\
                   host    all      all  127.0.0.1 255.255.255.255 trust\n\
                   local   replication all           trust\n\
                   host    trust    trust 127.0.0.1/32 md5\n\
                   # host  all      all  0.0.0.0/0    trust\n";
        let new = without_trust(old).expect("trust lines found");
        assert_eq!(
            new,
            "# TYPE  DATABASE USER ADDRESS METHOD\n\
             local   all      all              scram-sha-256\n\
             host    all      all  127.0.0.1/32 scram-sha-256  # loopback\n\
             host    all      all  ::1/128      scram-sha-256\n\
             host    all      all  127.0.0.1 255.255.255.255 scram-sha-256\n\
             local   replication all           scram-sha-256\n\
             host    trust    trust 127.0.0.1/32 md5\n\
             # host  all      all  0.0.0.0/0    trust\n"
        );
        assert_eq!(without_trust(&new), None);
        assert_eq!(
            without_trust("host all all 127.0.0.1/32 trust"),
            Some("host all all 127.0.0.1/32 scram-sha-256".to_owned())
        );
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let secret = Secret::generate();
        assert_eq!(secret.expose().len(), 2 * SECRET_BYTES);
        assert!(secret.expose().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(secret, Secret::generate());
        assert!(!format!("{secret:?}").contains(secret.expose()));
    }

    #[test]
    fn not_installed_says_what_to_install() {
        let message = DevDbError::NotInstalled.to_string();
        assert!(message.contains("apt-get install postgresql"), "{message}");
    }
}
