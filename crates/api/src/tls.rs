//! TLS for the HTTP and gRPC listeners (`[server.tls]`): rustls with the
//! aws-lc-rs provider, TLS 1.2 and 1.3, the certificate chain and key read
//! from PEM files and reloaded without a restart.
//!
//! - [`CertStore`] holds the current certificate and answers every
//!   handshake with it ([`ResolvesServerCert`]); [`CertStore::reload`]
//!   re-reads the files and swaps it in, keeping the old one (and logging)
//!   when the new files do not load, so a half-written renewal never takes
//!   the listener down. [`watch`] reloads on `SIGHUP` and when the files'
//!   modification times change (checked every few seconds).
//! - Client certificates (mutual TLS, [`ClientAuth`]): with
//!   `[server.tls] client_ca_file`, a client must present a certificate
//!   that chains to one of that file's CAs (`client_auth = "required"`, the
//!   default), or may present none but never a bad one (`"optional"`). The
//!   API key is still needed: a certificate says which machine connects,
//!   the key which project it acts for.
//! - [`TlsListener`] accepts TCP connections and runs each handshake in its
//!   own task with a timeout, so a client that connects and says nothing
//!   holds no accept slot; finished handshakes are handed to axum
//!   ([`axum::serve::Listener`]) or, through [`TlsListener::into_stream`],
//!   to tonic.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};
use rustls::ServerConfig;
use rustls::crypto::aws_lc_rs;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client may take to finish the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress at most per listener; more connections wait in
/// the kernel's backlog.
const MAX_HANDSHAKES: usize = 1024;

/// How often [`watch`] checks the files' modification times.
const WATCH_EVERY: Duration = Duration::from_secs(5);

/// A certificate or key file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("TLS: {0}")]
pub struct TlsError(String);

/// Client certificates the listeners ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAuth {
    /// PEM bundle of the CAs a client certificate must chain to.
    pub ca_file: PathBuf,
    /// Refuse clients without a certificate (else they may connect without
    /// one, but a certificate they present must verify).
    pub required: bool,
}

impl ClientAuth {
    fn verifier(&self) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.ca_file)
            .and_then(|it| it.collect::<Result<_, _>>())
            .map_err(|e| TlsError(format!("{}: {e}", self.ca_file.display())))?;
        let mut roots = rustls::RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(TlsError(format!(
                "{}: no usable CA certificate (client_ca_file)",
                self.ca_file.display()
            )));
        }
        let mut builder = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(aws_lc_rs::default_provider()),
        );
        if !self.required {
            builder = builder.allow_unauthenticated();
        }
        builder
            .build()
            .map_err(|e| TlsError(format!("{}: {e}", self.ca_file.display())))
    }
}

/// The certificate presented to clients, reloadable.
#[derive(Debug)]
pub struct CertStore {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    stamps: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn load(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| TlsError(format!("{}: {e}", cert_file.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "{}: no `BEGIN CERTIFICATE` block",
            cert_file.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| TlsError(format!("{}: {e}", key_file.display())))?;
    let signing = aws_lc_rs::default_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError(format!("{}: {e}", key_file.display())))?;
    let certified = CertifiedKey::new(certs, signing);
    certified.keys_match().map_err(|e| {
        TlsError(format!(
            "{} does not belong to {}: {e}",
            key_file.display(),
            cert_file.display()
        ))
    })?;
    Ok(certified)
}

impl CertStore {
    /// Loads the PEM certificate chain and private key.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Arc<Self>, TlsError> {
        let stamps = (modified(cert_file), modified(key_file));
        let key = load(cert_file, key_file)?;
        Ok(Arc::new(Self {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            current: RwLock::new(Arc::new(key)),
            stamps: Mutex::new(stamps),
        }))
    }

    /// Re-reads the files and presents the new certificate to the next
    /// handshakes; on an error the current one stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamps = (modified(&self.cert_file), modified(&self.key_file));
        let key = load(&self.cert_file, &self.key_file)?;
        *self.current.write() = Arc::new(key);
        *self.stamps.lock() = stamps;
        tracing::info!(cert = %self.cert_file.display(), "TLS certificate reloaded");
        Ok(())
    }

    /// [`CertStore::reload`] if either file's modification time changed.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = (modified(&self.cert_file), modified(&self.key_file));
        if *self.stamps.lock() == now {
            return Ok(false);
        }
        self.reload().map(|()| true)
    }

    /// The rustls server configuration answering with this certificate,
    /// offering `alpn` (e.g. `h2`, `http/1.1`) and asking for client
    /// certificates when `client` says so.
    pub fn server_config(
        self: &Arc<Self>,
        alpn: &[&[u8]],
        client: Option<&ClientAuth>,
    ) -> Result<Arc<ServerConfig>, TlsError> {
        let builder = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(e.to_string()))?;
        let builder = match client {
            None => builder.with_no_client_auth(),
            Some(client) => builder.with_client_cert_verifier(client.verifier()?),
        };
        let mut config = builder.with_cert_resolver(self.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().clone())
    }
}

/// Reloads `stores` on `SIGHUP` and when their files change, until `stop`
/// turns true. A failed reload is logged and the old certificate kept.
pub async fn watch(stores: Vec<Arc<CertStore>>, mut stop: tokio::sync::watch::Receiver<bool>) {
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut every = tokio::time::interval(WATCH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        #[cfg(unix)]
        let hangup = async {
            match hup.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hangup = std::future::pending::<()>();
        let forced = tokio::select! {
            _ = every.tick() => false,
            () = hangup => true,
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() { return }
                continue;
            }
        };
        for store in &stores {
            let result = if forced {
                store.reload().map(|()| true)
            } else {
                store.reload_if_changed()
            };
            if let Err(e) = result {
                tracing::error!(error = %e, "TLS certificate not reloaded; keeping the current one");
            }
        }
    }
}

/// A TCP listener that hands out TLS streams after their handshake.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Serves TLS on `listener` with `config`; handshakes run in tasks of
    /// the current runtime.
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    () = tx.closed() => return,
                };
                let (tcp, peer) = match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        // EMFILE and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { rx, local })
    }

    /// The accepted streams as a stream (for tonic's
    /// `serve_with_incoming_shutdown`).
    pub fn into_stream(
        self,
    ) -> impl futures::Stream<Item = io::Result<TlsStream<TcpStream>>> + Send + 'static {
        futures::stream::unfold(self.rx, |mut rx| async move {
            rx.recv().await.map(|(stream, _)| (Ok(stream), rx))
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The accept task ended (its runtime is shutting down).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
