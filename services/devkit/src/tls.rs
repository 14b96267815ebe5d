//! Certificates for tests of TLS, made in the test: a CA of the test's own ([`TestCa`]), the
//! certificates it signs ([`Issued`]), and a set of files as cert-manager mounts them
//! ([`TestPki`]: CA bundle, a server certificate for `localhost`/`127.0.0.1`/`::1`, a client
//! certificate).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use zvv_platform::tls::{ClientTlsFiles, ServerTlsFiles};

/// The names a loopback server's certificate is made for.
pub const LOOPBACK_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// A certificate authority made for one test.
pub struct TestCa {
    cert: rcgen::Certificate,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

/// A certificate signed by a [`TestCa`], with its private key.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    /// The certificate as DER, to compare with what a peer presented.
    pub der: Vec<u8>,
}

impl TestCa {
    /// A self-signed CA whose subject is `name`.
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert,
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate (PEM), for a CA bundle.
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate for `names` (DNS names or IP addresses; the first is also the
    /// common name).
    pub fn server(&self, names: &[&str]) -> anyhow::Result<Issued> {
        self.issue(names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate whose common name is `name`.
    pub fn client(&self, name: &str) -> anyhow::Result<Issued> {
        self.issue(&[name], ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> anyhow::Result<Issued> {
        let sans = match usage {
            ExtendedKeyUsagePurpose::ClientAuth => Vec::new(),
            _ => names.iter().map(|n| (*n).to_owned()).collect(),
        };
        let mut params = CertificateParams::new(sans)?;
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, *first);
        }
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        })
    }
}

impl Issued {
    /// Writes the certificate and key to `cert` and `key`, each replaced whole as a Secret
    /// volume does on a renewal (a new file renamed over the old one).
    pub fn write(&self, cert: &Path, key: &Path) -> std::io::Result<()> {
        replace_file(key, &self.key_pem)?;
        replace_file(cert, &self.cert_pem)
    }
}

/// Writes `contents` to a new file beside `path` and renames it over `path`.
pub fn replace_file(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}

/// A CA with a server and a client certificate, written to files in a folder of their own
/// (removed when this is dropped).
#[derive(Debug)]
pub struct TestPki {
    pub ca: TestCa,
    pub server: Issued,
    pub client: Issued,
    pub ca_file: PathBuf,
    pub server_cert_file: PathBuf,
    pub server_key_file: PathBuf,
    pub client_cert_file: PathBuf,
    pub client_key_file: PathBuf,
    dir: tempfile::TempDir,
}

impl TestPki {
    /// A CA named `name`, a server certificate for [`LOOPBACK_NAMES`] and a client certificate
    /// for `zvv-test-client`.
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let ca = TestCa::new(name)?;
        let server = ca.server(LOOPBACK_NAMES)?;
        let client = ca.client("zvv-test-client")?;
        let dir = tempfile::tempdir()?;
        let path = |file: &str| dir.path().join(file);
        let pki = Self {
            ca_file: path("ca.crt"),
            server_cert_file: path("tls.crt"),
            server_key_file: path("tls.key"),
            client_cert_file: path("client.crt"),
            client_key_file: path("client.key"),
            ca,
            server,
            client,
            dir,
        };
        replace_file(&pki.ca_file, &pki.ca.cert_pem())?;
        pki.server
            .write(&pki.server_cert_file, &pki.server_key_file)?;
        pki.client
            .write(&pki.client_cert_file, &pki.client_key_file)?;
        Ok(pki)
    }

    /// The folder that holds the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The listener's files; with `mutual`, clients need a certificate of this CA.
    pub fn server_files(&self, mutual: bool, reload_interval: Duration) -> ServerTlsFiles {
        ServerTlsFiles {
            cert_file: self.server_cert_file.clone(),
            key_file: self.server_key_file.clone(),
            client_ca_file: mutual.then(|| self.ca_file.clone()),
            reload_interval,
        }
    }

    /// A caller's files: trusting this CA, and with `certificate` presenting the client
    /// certificate.
    pub fn client_files(&self, certificate: bool) -> ClientTlsFiles {
        ClientTlsFiles {
            ca_file: Some(self.ca_file.clone()),
            cert_file: certificate.then(|| self.client_cert_file.clone()),
            key_file: certificate.then(|| self.client_key_file.clone()),
            ..ClientTlsFiles::default()
        }
    }
}
