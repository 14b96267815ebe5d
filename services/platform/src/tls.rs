//! TLS (rustls with ring) for a service's listener and for its calls to other suite services.
//!
//! A listener with a certificate and key ([`ServerTls`]) serves gRPC over TLS only, health and
//! reflection included, optionally requiring client certificates signed by a CA of its own
//! (mutual TLS). Calls to `https://` addresses ([`ClientTls`]) verify the peer against a CA
//! bundle, or the system's roots when none is set, and can present a client certificate.
//!
//! Certificates are renewed in place (cert-manager rewrites the mounted Secret): every file is
//! checked again at most once per reload interval, when a new connection is made, and a change
//! of modification time, size or inode rebuilds the configuration. Files that do not parse, or
//! a certificate that does not match its key (a renewal seen half-way), are logged at warn and
//! the previous configuration is kept; connections made earlier keep the certificate they
//! started with.

use std::{
    fmt, io,
    path::{Path, PathBuf},
    pin::Pin,
    sync::{Arc, Mutex, OnceLock},
    task::{Context, Poll},
    time::{Duration, Instant, SystemTime},
};

use futures::Stream;
use http::Uri;
use hyper_util::rt::TokioIo;
use rustls::{
    ClientConfig, RootCertStore, ServerConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject},
    server::WebPkiClientVerifier,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// How often the files are checked for a renewal by default.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// How long a client may take to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepted connections waiting for the server to take them.
const ACCEPT_BACKLOG: usize = 64;

/// A certificate, key or CA bundle that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{} holds no PEM certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{} holds no usable PEM private key: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    #[error("{}: {reason}", path.display())]
    Bundle { path: PathBuf, reason: String },
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    #[error("client certificate verification: {0}")]
    Verifier(String),
    #[error("{0}")]
    Incomplete(&'static str),
    #[error("the system has no usable root certificates ({0}); set ZVV_TLS_CA_FILE")]
    NoSystemRoots(String),
}

/// The crypto of every configuration: ring, whatever other crates of the process install.
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The certificate chain in a PEM file (leaf first).
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Bundle {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::Key {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// Every certificate of a CA bundle, as trust anchors.
fn roots(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in certificates(path)? {
        store.add(cert).map_err(|e| TlsError::Bundle {
            path: path.to_owned(),
            reason: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(Arc::new(store))
}

/// What a file looked like when it was last read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    inode: (u64, u64),
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        #[cfg(unix)]
        inode: {
            use std::os::unix::fs::MetadataExt;
            (meta.dev(), meta.ino())
        },
    })
}

type Build<T> = Box<dyn Fn() -> Result<T, TlsError> + Send + Sync>;

/// A configuration built from files, built again when they change.
struct Reloading<T> {
    what: &'static str,
    files: Vec<PathBuf>,
    interval: Duration,
    build: Build<T>,
    state: Mutex<ReloadState<T>>,
}

struct ReloadState<T> {
    checked: Instant,
    stamps: Vec<Option<Stamp>>,
    current: Arc<T>,
}

impl<T> Reloading<T> {
    /// Builds the first configuration; an error here is a start-up error.
    fn new(
        what: &'static str,
        files: Vec<PathBuf>,
        interval: Duration,
        build: Build<T>,
    ) -> Result<Self, TlsError> {
        let stamps = files.iter().map(|f| stamp(f)).collect();
        let current = Arc::new(build()?);
        Ok(Self {
            what,
            files,
            interval,
            build,
            state: Mutex::new(ReloadState {
                checked: Instant::now(),
                stamps,
                current,
            }),
        })
    }

    /// The current configuration, built again first when the interval has passed since the
    /// last check and a file has changed since it was last read.
    fn current(&self) -> Arc<T> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.checked.elapsed() < self.interval {
            return state.current.clone();
        }
        state.checked = Instant::now();
        let stamps: Vec<_> = self.files.iter().map(|f| stamp(f)).collect();
        if stamps == state.stamps {
            return state.current.clone();
        }
        // remembered even when the build fails, so that a broken file is reported once, not
        // at every check; the next change is tried again
        state.stamps = stamps;
        match (self.build)() {
            Ok(config) => {
                tracing::info!(what = self.what, files = ?self.files, "reloaded renewed tls files");
                state.current = Arc::new(config);
            }
            Err(e) => tracing::warn!(
                what = self.what,
                error = %e,
                "tls files changed but cannot be used: keeping the previous ones"
            ),
        }
        state.current.clone()
    }
}

/// Where a listener's certificate comes from.
#[derive(Debug, Clone)]
pub struct ServerTlsFiles {
    /// PEM certificate chain, leaf first (cert-manager's `tls.crt`).
    pub cert_file: PathBuf,
    /// PEM private key of the leaf certificate (`tls.key`).
    pub key_file: PathBuf,
    /// PEM bundle of the CAs whose client certificates are required (mutual TLS); without it
    /// clients need no certificate.
    pub client_ca_file: Option<PathBuf>,
    /// Least time between two checks of the files for a renewal.
    pub reload_interval: Duration,
}

impl ServerTlsFiles {
    fn build(&self) -> Result<ServerConfig, TlsError> {
        let certs = certificates(&self.cert_file)?;
        let key = private_key(&self.key_file)?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let builder = match &self.client_ca_file {
            Some(ca) => builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider())
                    .build()
                    .map_err(|e| TlsError::Verifier(e.to_string()))?,
            ),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }
}

/// The TLS of a listener: the certificate and key (and client CA) of [`ServerTlsFiles`],
/// re-read when they change. Cheap to clone.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<Reloading<ServerConfig>>,
    mutual: bool,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("files", &self.config.files)
            .field("mutual", &self.mutual)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Reads the files; an error names the file that cannot be used.
    pub fn from_files(files: ServerTlsFiles) -> Result<Self, TlsError> {
        let mut paths = vec![files.cert_file.clone(), files.key_file.clone()];
        paths.extend(files.client_ca_file.clone());
        let mutual = files.client_ca_file.is_some();
        let interval = files.reload_interval;
        let config = Reloading::new(
            "server certificate",
            paths,
            interval,
            Box::new(move || files.build()),
        )?;
        Ok(Self {
            config: Arc::new(config),
            mutual,
        })
    }

    /// Whether clients must present a certificate.
    pub fn is_mutual(&self) -> bool {
        self.mutual
    }

    /// The configuration new connections get now.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.config.current()
    }

    /// The TLS connections made to `listener`. Handshakes run beside the accept loop (bounded
    /// in time), so that a slow or silent client holds up no other; one that fails is logged
    /// and dropped. The listener closes when the stream is dropped.
    pub fn incoming(
        &self,
        listener: TcpListener,
    ) -> impl Stream<Item = Result<TlsConnection, io::Error>> + Send + 'static {
        let (tx, mut rx) = mpsc::channel(ACCEPT_BACKLOG);
        let tls = self.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = tx.closed() => break,
                    accepted = listener.accept() => accepted,
                };
                let (tcp, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // e.g. out of file descriptors: do not spin
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let info = tcp.connect_info();
                let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send(Ok(TlsConnection { stream, info })).await;
                        }
                        // a TCP probe or a client that went away before its hello
                        Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                            tracing::debug!(%peer, error = %e, "tls handshake not completed");
                        }
                        Ok(Err(e)) => {
                            tracing::info!(%peer, error = %e, "tls handshake failed");
                        }
                        Err(_) => tracing::debug!(%peer, "tls handshake timed out"),
                    }
                });
            }
        });
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}

/// A connection that completed its TLS handshake. The server sees its TCP peer address as it
/// does that of a plaintext connection ([`TcpConnectInfo`]).
pub struct TlsConnection {
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    info: TcpConnectInfo,
}

impl TlsConnection {
    /// The certificate chain the client presented (mutual TLS), leaf first.
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.stream.get_ref().1.peer_certificates()
    }
}

impl Connected for TlsConnection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// What calls to `https://` addresses trust and present.
#[derive(Debug, Clone)]
pub struct ClientTlsFiles {
    /// PEM bundle of the CAs that sign the called services' certificates; without it the
    /// system's roots.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain presented to servers that require one (mutual TLS); needs
    /// `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Least time between two checks of the files for a renewal.
    pub reload_interval: Duration,
}

impl Default for ClientTlsFiles {
    fn default() -> Self {
        Self {
            ca_file: None,
            cert_file: None,
            key_file: None,
            reload_interval: DEFAULT_RELOAD_INTERVAL,
        }
    }
}

impl ClientTlsFiles {
    fn build(&self) -> Result<ClientConfig, TlsError> {
        let roots = match &self.ca_file {
            Some(ca) => roots(ca)?,
            None => system_roots()?,
        };
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let mut config = match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                builder.with_client_auth_cert(certificates(cert)?, private_key(key)?)?
            }
            _ => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }
}

/// The system's root certificates, loaded once.
fn system_roots() -> Result<Arc<RootCertStore>, TlsError> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut store = RootCertStore::empty();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map_or_else(|| "none found".to_owned(), ToString::to_string);
                return Err(why);
            }
            Ok(Arc::new(store))
        })
        .clone()
        .map_err(TlsError::NoSystemRoots)
}

/// The TLS of calls to `https://` addresses. The default trusts the system's roots and
/// presents no certificate; [`ClientTls::from_files`] takes a CA bundle and a client
/// certificate, re-read when they change. Cheap to clone.
#[derive(Clone, Default)]
pub struct ClientTls {
    files: Option<Arc<Reloading<ClientConfig>>>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.files {
            None => f.write_str("ClientTls(system roots)"),
            Some(files) => f
                .debug_struct("ClientTls")
                .field("files", &files.files)
                .finish_non_exhaustive(),
        }
    }
}

impl ClientTls {
    /// The system's roots, no client certificate.
    pub const fn system() -> Self {
        Self { files: None }
    }

    /// Reads the files (the system's roots when `files` names no CA bundle).
    pub fn from_files(files: ClientTlsFiles) -> Result<Self, TlsError> {
        if files.cert_file.is_some() != files.key_file.is_some() {
            return Err(TlsError::Incomplete(
                "a client certificate and its key are set together",
            ));
        }
        if files.ca_file.is_none() && files.cert_file.is_none() {
            return Ok(Self::system());
        }
        let paths = [&files.ca_file, &files.cert_file, &files.key_file]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        let interval = files.reload_interval;
        let config = Reloading::new(
            "client tls",
            paths,
            interval,
            Box::new(move || files.build()),
        )?;
        Ok(Self {
            files: Some(Arc::new(config)),
        })
    }

    /// Whether a CA bundle or a client certificate was configured.
    pub fn is_configured(&self) -> bool {
        self.files.is_some()
    }

    /// The configuration new connections get now.
    pub fn config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        match &self.files {
            Some(files) => Ok(files.current()),
            None => {
                static SYSTEM: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
                SYSTEM
                    .get_or_init(|| {
                        ClientTlsFiles::default()
                            .build()
                            .map(Arc::new)
                            .map_err(|e| e.to_string())
                    })
                    .clone()
                    .map_err(TlsError::NoSystemRoots)
            }
        }
    }

    /// The connector of a channel to an `https://` address.
    pub(crate) fn connector(&self) -> TlsConnector {
        TlsConnector { tls: self.clone() }
    }
}

/// Opens TCP connections and runs the TLS handshake with the configuration current at that
/// moment, verifying the certificate against the address's host name (or IP address).
#[derive(Clone, Debug)]
pub(crate) struct TlsConnector {
    tls: ClientTls,
}

type Connecting = Pin<
    Box<
        dyn Future<Output = io::Result<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>>> + Send,
    >,
>;

impl tower::Service<Uri> for TlsConnector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        Box::pin(async move {
            let config = tls.config().map_err(io::Error::other)?;
            let host = uri
                .host()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "address has no host"))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let name = ServerName::try_from(host.clone())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok(TokioIo::new(stream))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_file_is_read_again_after_the_interval_and_a_broken_one_is_not_taken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("value");
        std::fs::write(&path, "1").unwrap();
        let read = path.clone();
        let value = Reloading::new(
            "test",
            vec![path.clone()],
            Duration::from_millis(50),
            Box::new(move || {
                let text = std::fs::read_to_string(&read).map_err(|source| TlsError::Read {
                    path: read.clone(),
                    source,
                })?;
                text.trim().parse::<u32>().map_err(|e| TlsError::Bundle {
                    path: read.clone(),
                    reason: e.to_string(),
                })
            }),
        )
        .unwrap();
        assert_eq!(*value.current(), 1);
        replace(&path, "2");
        // not before the interval
        assert_eq!(*value.current(), 1);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(*value.current(), 2);
        replace(&path, "not a number");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(*value.current(), 2, "the previous value is kept");
        std::fs::remove_file(&path).unwrap();
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(*value.current(), 2, "a missing file keeps it too");
        replace(&path, "3");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(*value.current(), 3);
    }

    /// As a Secret volume does: a new file moved over the old one.
    fn replace(path: &Path, text: &str) {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    #[test]
    fn unusable_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let err = ServerTls::from_files(ServerTlsFiles {
            cert_file: empty.clone(),
            key_file: dir.path().join("missing.pem"),
            client_ca_file: None,
            reload_interval: DEFAULT_RELOAD_INTERVAL,
        })
        .unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
        assert!(err.to_string().contains("empty.pem"), "{err}");
        let err = ClientTls::from_files(ClientTlsFiles {
            ca_file: Some(dir.path().join("missing-ca.pem")),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("missing-ca.pem"), "{err}");
    }
}
