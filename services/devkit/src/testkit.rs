//! Test support shared by every service's tests and the end-to-end crate: a fresh PostgreSQL
//! database per test, and development keys with a token minter.
//!
//! With `DATABASE_URL` set, each test gets a new database on that server. Without it, the first
//! test in the process starts a throwaway cluster from the machine's PostgreSQL server binaries
//! (initdb in a temporary folder, random port) that is stopped and removed when the process
//! exits.

use std::{path::PathBuf, sync::Arc};

use sqlx::{
    Connection, Executor,
    postgres::{PgConnectOptions, PgConnection},
};
use tokio::sync::OnceCell;

use crate::devdb::{ClusterOptions, LocalCluster};

use zvv_platform::{
    auth::{OrgType, Role, TokenRequest, TokenSigner, TokenVerifier, generate_ed25519_pem},
    bsn::{BsnVault, KeyFile},
};

/// The issuer and audience test tokens carry.
pub const ISSUER: &str = "zvv-test";
pub const AUDIENCE: &str = "zvv";

struct Server {
    admin: PgConnectOptions,
    /// URL of the admin database, for child processes.
    admin_url: String,
    // keeps the throwaway cluster (if any) alive for the whole process
    cluster: Option<LocalCluster>,
}

static SERVER: OnceCell<Server> = OnceCell::const_new();

async fn server() -> anyhow::Result<&'static Server> {
    SERVER
        .get_or_try_init(|| async {
            if let Ok(url) = std::env::var("DATABASE_URL")
                && !url.trim().is_empty()
            {
                let admin: PgConnectOptions = url.parse()?;
                return Ok(Server {
                    admin,
                    admin_url: url,
                    cluster: None,
                });
            }
            let dir = tempfile::Builder::new()
                .prefix("zvv-test-pg-")
                .tempdir()?
                .keep();
            // the postgres OS user (used when tests run as root) must be able to enter it
            set_mode(&dir, 0o755)?;
            let data = dir.join("data");
            let cluster = LocalCluster::start(
                &data,
                ClusterOptions {
                    port: None,
                    durable: false,
                },
            )
            .await?;
            cluster.stop_when_process_exits(Some(&dir))?;
            Ok(Server {
                admin: cluster.connect_options("postgres"),
                admin_url: cluster.url("postgres"),
                cluster: Some(cluster),
            })
        })
        .await
}

#[cfg(unix)]
fn set_mode(path: &std::path::Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_: &std::path::Path, _: u32) -> std::io::Result<()> {
    Ok(())
}

/// A database of its own for one test. On a server named by `DATABASE_URL` it is dropped
/// again when the test ends; a throwaway cluster is removed whole when the process exits.
#[derive(Debug)]
pub struct TestDb {
    pub name: String,
    pub options: PgConnectOptions,
    /// The same database as a URL, for `DATABASE_URL` of child processes.
    pub url: String,
    /// Set on an external server: where to drop the database (and its roles) from.
    drop_from: Option<PgConnectOptions>,
    /// Roles made for this database, dropped with it on an external server.
    roles: std::sync::Mutex<Vec<String>>,
}

/// The two database roles of one service: the owner that migrates and owns the tables, and the
/// runtime role the service connects as (only INSERT and SELECT on the audit tables).
#[derive(Debug, Clone)]
pub struct ServiceRoles {
    pub owner: PgConnectOptions,
    pub runtime: PgConnectOptions,
    pub owner_role: String,
    pub runtime_role: String,
    /// The same connections as URLs, for `ZVV_MIGRATION_DATABASE_URL` and `DATABASE_URL`.
    pub owner_url: String,
    pub runtime_url: String,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(admin) = self.drop_from.take() else {
            return;
        };
        let name = self.name.clone();
        let roles = std::mem::take(&mut *self.roles.lock().unwrap_or_else(|p| p.into_inner()));
        // Drop runs inside the test's runtime: do the async work on a thread of its own
        let dropped = std::thread::spawn(move || -> anyhow::Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let mut conn = PgConnection::connect_with(&admin).await?;
                conn.execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .await?;
                for role in roles {
                    conn.execute(sqlx::AssertSqlSafe(format!("DROP ROLE IF EXISTS {role}")))
                        .await?;
                }
                conn.close().await?;
                Ok(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

/// `url` with its user and password replaced (both URL-safe).
fn with_user(url: &str, user: &str, password: &str) -> String {
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[authority_start..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let host = match rest[..authority_end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    format!("{}{user}:{password}@{host}", &url[..authority_start])
}

/// `url` with its database path replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    format!("{base}/{name}{query}")
}

impl TestDb {
    /// A fresh database on a cluster of the test's own (e.g. one a fault test stops and
    /// starts); it goes with the cluster.
    pub async fn on_cluster(cluster: &LocalCluster) -> anyhow::Result<Self> {
        let name = format!("zvv_test_{}", uuid::Uuid::new_v4().simple());
        cluster.create_database(&name).await?;
        Ok(Self {
            options: cluster.connect_options(&name),
            url: cluster.url(&name),
            drop_from: None,
            roles: std::sync::Mutex::new(Vec::new()),
            name,
        })
    }

    pub async fn create() -> anyhow::Result<Self> {
        let server = server().await?;
        let name = format!("zvv_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect_with(&server.admin).await?;
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await?;
        conn.close().await?;
        Ok(Self {
            options: server.admin.clone().database(&name),
            url: with_database(&server.admin_url, &name),
            drop_from: server.cluster.is_none().then(|| server.admin.clone()),
            roles: std::sync::Mutex::new(Vec::new()),
            name,
        })
    }

    /// Creates the owner and runtime roles of `service` for this database (with random
    /// passwords), the owner allowed to create the service's schema.
    pub async fn service_roles(&self, service: &str) -> anyhow::Result<ServiceRoles> {
        use rand::RngCore;
        let mut conn = PgConnection::connect_with(&self.options).await?;
        let mut made = Vec::new();
        for suffix in ["owner", "rt"] {
            let role = format!("{}_{service}_{suffix}", self.name);
            let mut secret = [0u8; 16];
            rand::rngs::OsRng.fill_bytes(&mut secret);
            let password = hex::encode(secret);
            conn.execute(sqlx::AssertSqlSafe(format!(
                "CREATE ROLE {role} LOGIN PASSWORD '{password}'"
            )))
            .await?;
            conn.execute(sqlx::AssertSqlSafe(format!(
                "GRANT CONNECT ON DATABASE {} TO {role}",
                self.name
            )))
            .await?;
            self.roles
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(role.clone());
            made.push((role, password));
        }
        let (owner_role, owner_password) = made.remove(0);
        let (runtime_role, runtime_password) = made.remove(0);
        conn.execute(sqlx::AssertSqlSafe(format!(
            "GRANT CREATE ON DATABASE {} TO {owner_role}",
            self.name
        )))
        .await?;
        conn.close().await?;
        Ok(ServiceRoles {
            owner_url: with_user(&self.url, &owner_role, &owner_password),
            runtime_url: with_user(&self.url, &runtime_role, &runtime_password),
            owner: self
                .options
                .clone()
                .username(&owner_role)
                .password(&owner_password),
            runtime: self
                .options
                .clone()
                .username(&runtime_role)
                .password(&runtime_password),
            owner_role,
            runtime_role,
        })
    }
}

/// The runtime pool of a service in a test database, as in a deployment: its owner role runs
/// `migrate` and grants the runtime role only what it needs, the pool connects as the runtime
/// role.
pub async fn service_pool<F, Fut>(
    db: &TestDb,
    schema: zvv_platform::db::Schema,
    max_connections: u32,
    migrate: F,
) -> anyhow::Result<(sqlx::PgPool, ServiceRoles)>
where
    F: FnOnce(sqlx::PgPool) -> Fut,
    Fut: std::future::Future<Output = Result<(), sqlx::migrate::MigrateError>>,
{
    let settings = zvv_platform::db::PoolSettings {
        max_connections,
        acquire_timeout: std::time::Duration::from_secs(10),
    };
    service_pool_with(db, schema, &settings, migrate).await
}

/// [`service_pool`] with the runtime pool's settings.
pub async fn service_pool_with<F, Fut>(
    db: &TestDb,
    schema: zvv_platform::db::Schema,
    settings: &zvv_platform::db::PoolSettings,
    migrate: F,
) -> anyhow::Result<(sqlx::PgPool, ServiceRoles)>
where
    F: FnOnce(sqlx::PgPool) -> Fut,
    Fut: std::future::Future<Output = Result<(), sqlx::migrate::MigrateError>>,
{
    use zvv_platform::db::{PoolSettings, connect, grant_runtime};
    let roles = db.service_roles(schema.name()).await?;
    let owner = connect(roles.owner.clone(), &PoolSettings::default()).await?;
    migrate(owner.clone()).await?;
    grant_runtime(&owner, schema, &roles.runtime_role).await?;
    owner.close().await;
    let pool = connect(roles.runtime.clone(), settings).await?;
    Ok((pool, roles))
}

/// Signing and BSN keys made for one test, and the files that hold them.
pub struct TestKeys {
    pub dir: tempfile::TempDir,
    pub public_key_path: PathBuf,
    pub private_key_pem: String,
    pub bsn_keys: KeyFile,
    /// The base64 of a request fingerprint key (for services without a BSN vault).
    pub fingerprint_key: String,
    /// The Ed25519 key that signs audit checkpoints (PKCS#8 PEM) and its public key file.
    pub audit_key_pem: String,
    pub audit_public_key_path: PathBuf,
    signer: TokenSigner,
}

impl TestKeys {
    pub fn new() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let (private, public) = generate_ed25519_pem()?;
        let public_key_path = dir.path().join("jwt-public.pem");
        std::fs::write(&public_key_path, public)?;
        let signer = TokenSigner::from_pem(private.as_bytes(), ISSUER, AUDIENCE)?;
        let (audit_private, audit_public) = generate_ed25519_pem()?;
        let audit_public_key_path = dir.path().join("audit-public.pem");
        std::fs::write(&audit_public_key_path, audit_public)?;
        Ok(Self {
            dir,
            public_key_path,
            private_key_pem: private,
            bsn_keys: KeyFile::generate(),
            fingerprint_key: zvv_platform::idempotency::FingerprintKey::generate_base64(),
            audit_key_pem: audit_private,
            audit_public_key_path,
            signer,
        })
    }

    /// Where the servers of this test append their audit checkpoints.
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.dir.path().join("audit")
    }

    /// The checkpoint writer of this test's servers (signing with [`TestKeys::audit_key_pem`]
    /// into [`TestKeys::checkpoint_dir`]).
    pub fn checkpoint_writer(
        &self,
    ) -> anyhow::Result<zvv_platform::audit::checkpoint::CheckpointWriter> {
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&self.audit_key_pem)
            .map_err(|e| anyhow::anyhow!("audit key: {e}"))?;
        Ok(zvv_platform::audit::checkpoint::CheckpointWriter::new(
            key,
            Some(self.checkpoint_dir()),
        ))
    }

    /// Audit settings for a test server: sealing every 50 ms, checkpoints every second.
    pub fn audit_settings(&self) -> anyhow::Result<zvv_platform::server::AuditSettings> {
        Ok(zvv_platform::server::AuditSettings {
            sealer: zvv_platform::audit::seal::SealerSettings {
                interval: std::time::Duration::from_millis(50),
                checkpoint_interval: std::time::Duration::from_secs(1),
            },
            checkpoints: Some(self.checkpoint_writer()?),
        })
    }

    /// Seals what is final in `schema` and verifies it against this test's checkpoints.
    pub async fn verify_audit(
        &self,
        pool: &sqlx::PgPool,
        schema: zvv_platform::db::Schema,
    ) -> anyhow::Result<zvv_platform::audit::VerifyReport> {
        zvv_platform::audit::seal::seal_all(pool, schema).await?;
        let file = zvv_platform::audit::checkpoint::sink_file(&self.checkpoint_dir(), schema);
        let key = zvv_platform::audit::checkpoint::load_public_key(&self.audit_public_key_path)?;
        let anchors = zvv_platform::audit::Anchors {
            file: Some(file.as_path()),
            keys: vec![key],
        };
        Ok(zvv_platform::audit::verify(pool, schema, &anchors).await?)
    }

    pub fn fingerprints(&self) -> anyhow::Result<Arc<zvv_platform::idempotency::FingerprintKey>> {
        Ok(Arc::new(
            zvv_platform::idempotency::FingerprintKey::from_base64(&self.fingerprint_key)
                .map_err(anyhow::Error::msg)?,
        ))
    }

    /// The verifier of `service` (e.g. `intake`): SERVICE tokens must name it.
    pub fn verifier(&self, service: &str) -> anyhow::Result<Arc<TokenVerifier>> {
        Ok(Arc::new(
            TokenVerifier::from_files(&[&self.public_key_path], None, ISSUER, AUDIENCE, 5)?
                .for_service(service),
        ))
    }

    pub fn vault(&self) -> anyhow::Result<Arc<BsnVault>> {
        Ok(Arc::new(BsnVault::from_key_file(&self.bsn_keys)?))
    }

    pub fn signer(&self) -> &TokenSigner {
        &self.signer
    }

    /// A token valid for an hour, without a `municipalities` claim (a MUNICIPALITY whose `org`
    /// is a CBS code then has that municipality as its jurisdiction).
    pub fn token(&self, org: &str, org_type: OrgType, roles: &[Role]) -> String {
        self.token_in(org, org_type, roles, &[])
    }

    /// A token valid for an hour whose `municipalities` claim names `municipalities` (left out
    /// when empty).
    pub fn token_in(
        &self,
        org: &str,
        org_type: OrgType,
        roles: &[Role],
        municipalities: &[&str],
    ) -> String {
        self.signer
            .mint(&TokenRequest {
                sub: format!("{}-user", org),
                org: org.to_owned(),
                org_type,
                roles: roles.to_vec(),
                municipalities: municipalities.iter().map(|m| (*m).to_owned()).collect(),
                ttl: chrono::Duration::hours(1),
                for_service: None,
            })
            .unwrap_or_else(|e| panic!("test token: {e}"))
    }

    /// The token of a matrix caller of an RPC of `service` (e.g. `intake`): a suite SERVICE
    /// caller gets a SERVICE token for that service.
    pub fn caller_token(&self, caller: &matrix::Caller, service: &str) -> String {
        if caller.org_type == OrgType::Suite && caller.role == Role::Service {
            return self.service_token(&caller.org, service);
        }
        self.token_in(
            &caller.org,
            caller.org_type,
            &[caller.role],
            &caller.municipalities,
        )
    }

    /// A suite SERVICE token of `org` (e.g. `zvv-signalling`) for `service` (e.g. `intake`),
    /// valid for an hour.
    pub fn service_token(&self, org: &str, service: &str) -> String {
        self.signer
            .mint(&TokenRequest {
                sub: org.to_owned(),
                org: org.to_owned(),
                org_type: OrgType::Suite,
                roles: vec![Role::Service],
                municipalities: Vec::new(),
                ttl: chrono::Duration::hours(1),
                for_service: Some(service.to_owned()),
            })
            .unwrap_or_else(|e| panic!("test token: {e}"))
    }
}

/// The elfproef written out independently of [`zvv_platform::bsn::Bsn::parse`], so that tests do not
/// check the code with itself.
pub fn passes_elfproef(bsn: &str) -> bool {
    let digits: Vec<i64> = bsn
        .bytes()
        .map(|b| i64::from(b) - i64::from(b'0'))
        .collect();
    if digits.len() != 9 || digits.iter().any(|d| !(0..=9).contains(d)) {
        return false;
    }
    let sum: i64 = digits
        .iter()
        .zip([9, 8, 7, 6, 5, 4, 3, 2, -1])
        .map(|(d, w)| d * w)
        .sum();
    sum != 0 && sum % 11 == 0
}

/// The `n`th valid BSN from 100000000 upwards (distinct `n` give distinct BSNs).
pub fn valid_bsn(n: usize) -> String {
    (100_000_000u32..)
        .map(|v| v.to_string())
        .filter(|s| passes_elfproef(s))
        .nth(n)
        .unwrap_or_else(|| unreachable!("there are millions of valid BSNs"))
}

/// The fields named in the `google.rpc.BadRequest` detail of a status.
pub fn violation_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// Asserts INVALID_ARGUMENT whose BadRequest violations name exactly `field` (once or more).
#[track_caller]
pub fn assert_invalid(status: &tonic::Status, field: &str, case: &str) {
    assert_eq!(
        status.code(),
        tonic::Code::InvalidArgument,
        "{case}: expected INVALID_ARGUMENT, got {status:?}"
    );
    let fields = violation_fields(status);
    assert!(
        !fields.is_empty() && fields.iter().all(|f| f == field),
        "{case}: expected violations naming only {field:?}, got {fields:?} ({})",
        status.message()
    );
}

/// The error of a unary call that must fail.
#[track_caller]
pub fn expect_err<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, tonic::Status>,
    case: &str,
) -> tonic::Status {
    match result {
        Ok(r) => panic!("{case}: expected an error, got {:?}", r.into_inner()),
        Err(s) => s,
    }
}

#[cfg(test)]
mod tests {
    use super::{passes_elfproef, valid_bsn, with_database, with_user};

    #[test]
    fn database_urls() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "t1"),
            "postgres://u:p@h:5432/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "t1"), "postgres://h/t1");
        assert_eq!(
            with_user("postgres://u:p@h:5432/t1?sslmode=disable", "r", "s"),
            "postgres://r:s@h:5432/t1?sslmode=disable"
        );
        assert_eq!(
            with_user("postgres://h/t1", "r", "s"),
            "postgres://r:s@h/t1"
        );
    }

    #[test]
    fn test_bsns_agree_with_the_parser() {
        for n in 0..200 {
            let bsn = valid_bsn(n);
            assert!(zvv_platform::bsn::Bsn::parse(&bsn).is_ok(), "{bsn}");
        }
        assert!(!passes_elfproef("123456789"));
        assert!(!passes_elfproef("000000000"));
    }
}

/// The jurisdiction matrix every service tests: each RPC of its policy table called by six
/// kinds of caller, derived from the table itself, with the outcome the service promises.
pub mod matrix {
    use tonic::Code;

    use zvv_platform::{
        auth::{OrgType, Role},
        policy::{Policy, Rule},
    };

    /// A kind of caller.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Column {
        /// Allowed by the policy, working for the municipality the test data belong to.
        OwnMunicipality,
        /// Allowed by the policy, working for another municipality only.
        OtherMunicipality,
        /// Allowed by the policy, with no jurisdiction at all.
        NoJurisdiction,
        /// An organisation type no grant of the RPC names (own municipality, allowed role).
        WrongOrgType,
        /// A role no grant of the RPC names (own municipality, allowed organisation type).
        WrongRole,
        /// A suite service with its SERVICE token.
        SuiteService,
    }

    pub const COLUMNS: [Column; 6] = [
        Column::OwnMunicipality,
        Column::OtherMunicipality,
        Column::NoJurisdiction,
        Column::WrongOrgType,
        Column::WrongRole,
        Column::SuiteService,
    ];

    /// What a call should come to.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Expect {
        /// OK, and the answer holds the test's object.
        Shows,
        /// OK, but the answer leaves the test's object out (a list filtered by jurisdiction).
        Hides,
        /// This status code.
        Code(Code),
    }

    pub const OK: Expect = Expect::Shows;
    pub const HIDDEN: Expect = Expect::Hides;
    pub const NOT_FOUND: Expect = Expect::Code(Code::NotFound);
    pub const DENIED: Expect = Expect::Code(Code::PermissionDenied);

    /// The expected outcome of one RPC for each of [`COLUMNS`].
    #[derive(Debug, Clone, Copy)]
    pub struct Row {
        pub method: &'static str,
        pub expect: [Expect; 6],
    }

    /// Who calls in one cell.
    #[derive(Debug, Clone)]
    pub struct Caller {
        pub column: Column,
        /// An organisation name that is not a CBS code, so that only the claim gives jurisdiction.
        pub org: String,
        pub org_type: OrgType,
        pub role: Role,
        /// The `municipalities` claim (left out when empty).
        pub municipalities: Vec<&'static str>,
    }

    /// The organisation type and role of the first grant of `rule` that is not the suite
    /// SERVICE grant; for SERVICE-only RPCs a municipality professional.
    fn allowed(rule: &Rule) -> (OrgType, Role) {
        rule.grants
            .iter()
            .find(|g| !g.roles.contains(&Role::Service))
            .map(|g| {
                let org_type = g
                    .org_types
                    .and_then(|t| t.first().copied())
                    .unwrap_or(OrgType::Municipality);
                (org_type, g.roles[0])
            })
            .unwrap_or((OrgType::Municipality, Role::Professional))
    }

    /// The caller of `column` for `rule`, whose own municipality is `own` and other `other`.
    /// `org` names the organisation of the three allowed columns (tests may need the data to
    /// belong to it).
    pub fn caller(
        rule: &Rule,
        column: Column,
        org: &str,
        own: &'static str,
        other: &'static str,
    ) -> Caller {
        let (org_type, role) = allowed(rule);
        let granted_type = |t: OrgType| {
            rule.grants
                .iter()
                .any(|g| g.org_types.is_none_or(|ts| ts.contains(&t)))
        };
        let granted_role = |r: Role| rule.grants.iter().any(|g| g.roles.contains(&r));
        let base = Caller {
            column,
            org: org.to_owned(),
            org_type,
            role,
            municipalities: vec![own],
        };
        match column {
            Column::OwnMunicipality => base,
            Column::OtherMunicipality => Caller {
                municipalities: vec![other],
                ..base
            },
            Column::NoJurisdiction => Caller {
                municipalities: vec![],
                ..base
            },
            Column::WrongOrgType => {
                let wrong = OrgType::ALL
                    .iter()
                    .copied()
                    .find(|t| *t != OrgType::Suite && !granted_type(*t))
                    .unwrap_or(OrgType::Suite);
                Caller {
                    org: format!("{org}-other-type"),
                    org_type: wrong,
                    ..base
                }
            }
            Column::WrongRole => {
                let wrong = Role::ALL
                    .iter()
                    .copied()
                    .find(|r| *r != Role::Service && !granted_role(*r))
                    .unwrap_or(Role::Auditor);
                Caller {
                    role: wrong,
                    ..base
                }
            }
            Column::SuiteService => Caller {
                org: "zvv-test-service".to_owned(),
                org_type: OrgType::Suite,
                role: Role::Service,
                municipalities: vec![],
                column,
            },
        }
    }

    /// Every RPC of `policy` must have a row, and every row an RPC: a new RPC without its rows
    /// fails the test.
    pub fn check_coverage(policy: &Policy, rows: &[Row]) -> Result<(), String> {
        let mut problems = Vec::new();
        for rule in policy.rules {
            if !rows.iter().any(|r| r.method == rule.method) {
                problems.push(format!(
                    "{} has no row in the jurisdiction matrix",
                    rule.method
                ));
            }
        }
        for row in rows {
            if policy.rule(row.method).is_none() {
                problems.push(format!(
                    "{} is not an RPC of {}",
                    row.method, policy.service
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// Where a matrix runs: the keys that mint its callers' tokens, the service whose SERVICE
    /// tokens the suite column gets (e.g. `intake`), the organisation of the allowed callers and
    /// the own and other municipality.
    pub struct Setup<'a> {
        pub keys: &'a super::TestKeys,
        pub service: &'a str,
        pub org: &'a str,
        pub own: &'static str,
        pub other: &'static str,
    }

    /// Calls every RPC of `policies` as the caller of each of [`COLUMNS`] through `call`
    /// (method, caller, its token) and compares each outcome with its row; panics listing every
    /// cell that differs. Every RPC must have a row.
    pub async fn run<F>(setup: Setup<'_>, policies: &[&Policy], rows: &[Row], mut call: F)
    where
        F: AsyncFnMut(&'static str, &Caller, &str) -> Result<bool, tonic::Status>,
    {
        let mut failures = Vec::new();
        let mut cells = 0;
        for policy in policies {
            for rule in policy.rules {
                let row = rows
                    .iter()
                    .find(|r| r.method == rule.method)
                    .unwrap_or_else(|| panic!("{} has no row", rule.method));
                for (column, expected) in COLUMNS.iter().zip(row.expect) {
                    let caller = caller(rule, *column, setup.org, setup.own, setup.other);
                    let token = setup.keys.caller_token(&caller, setup.service);
                    let result = call(rule.method, &caller, &token).await;
                    let got = outcome(&result);
                    cells += 1;
                    if got != expected {
                        failures.push(format!(
                            "{} as {:?} ({} {} in {:?}): expected {expected:?}, got {got:?} ({:?})",
                            rule.method,
                            column,
                            caller.org_type,
                            caller.role,
                            caller.municipalities,
                            result.as_ref().err().map(|s| s.message().to_owned())
                        ));
                    }
                }
            }
        }
        assert_eq!(
            cells,
            policies.iter().map(|p| p.rules.len()).sum::<usize>() * COLUMNS.len()
        );
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// The outcome of a call: `Ok(seen)` or the status code.
    pub fn outcome(result: &Result<bool, tonic::Status>) -> Expect {
        match result {
            Ok(true) => Expect::Shows,
            Ok(false) => Expect::Hides,
            Err(s) => Expect::Code(s.code()),
        }
    }
}
