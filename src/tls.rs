//! TLS with rustls, shared by the server's listeners and the Rust client.
//!
//! - [`Stream`]: a plain or TLS stream over a non-blocking mio socket, with `Read`/`Write` that
//!   report `WouldBlock` like the socket does, so the loop (and tungstenite for `wss://`) drives
//!   TLS exactly as it drives plain TCP.
//! - [`CertStore`]: the server's certificate and key, swapped in place when the files change on
//!   disk or on SIGHUP (a Let's Encrypt renewal needs no restart; open connections keep the
//!   session they have). Files are read by a helper thread, never by the loop.

use mio::net::TcpStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

/// How often the certificate files are looked at for a change.
const WATCH_EVERY: Duration = Duration::from_secs(2);
/// Plaintext rustls holds for a connection before a write reports `WouldBlock`.
const TLS_BUFFER: usize = 64 * 1024;

/// A connection's byte stream: plain TCP, or TLS over it.
#[derive(Debug)]
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream>),
}

/// TLS over a non-blocking socket.
#[derive(Debug)]
pub struct TlsStream {
    conn: rustls::Connection,
    sock: TcpStream,
}

impl Stream {
    /// A server-side TLS stream; the handshake runs as the stream is read and written.
    pub fn server(sock: TcpStream, config: Arc<rustls::ServerConfig>) -> io::Result<Stream> {
        let mut conn = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
        conn.set_buffer_limit(Some(TLS_BUFFER));
        Ok(Stream::Tls(Box::new(TlsStream {
            conn: conn.into(),
            sock,
        })))
    }

    /// A client-side TLS stream to `name` (the name the certificate must carry).
    pub fn client(
        sock: TcpStream,
        config: Arc<rustls::ClientConfig>,
        name: &str,
    ) -> io::Result<Stream> {
        let name = ServerName::try_from(name.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut conn = rustls::ClientConnection::new(config, name).map_err(io::Error::other)?;
        conn.set_buffer_limit(Some(TLS_BUFFER));
        Ok(Stream::Tls(Box::new(TlsStream {
            conn: conn.into(),
            sock,
        })))
    }

    /// The socket, to register with a poll or shut down.
    pub fn socket(&mut self) -> &mut TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(t) => &mut t.sock,
        }
    }

    /// The socket alone, once the stream is done (TLS state dropped).
    pub fn into_socket(self) -> TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(t) => t.sock,
        }
    }

    /// Whether TLS still holds bytes the socket has not taken.
    pub fn has_unsent(&self) -> bool {
        match self {
            Stream::Plain(_) => false,
            Stream::Tls(t) => t.conn.wants_write(),
        }
    }

    /// Tells a TLS peer the stream ends (close_notify), best effort.
    pub fn close_notify(&mut self) {
        if let Stream::Tls(t) = self {
            t.conn.send_close_notify();
            let _ = t.send_tls();
        }
    }
}

impl TlsStream {
    /// Writes queued TLS records until done or the socket is full.
    fn send_tls(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.sock) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// `send_tls` where a full socket is not an error (the rest leaves on the next write or
    /// writable event).
    fn send_tls_now(&mut self) -> io::Result<()> {
        match self.send_tls() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            other => other,
        }
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                // 0 here is the peer's close_notify: a clean end.
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            match self.conn.read_tls(&mut self.sock) {
                // The socket ended without close_notify: treat it as a lost connection.
                Ok(0) => return Ok(0),
                Ok(_) => {
                    let processed = self.conn.process_new_packets();
                    // Handshake messages, or the alert describing the error, go out now.
                    let sent = self.send_tls_now();
                    if let Err(e) = processed {
                        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                    }
                    sent?;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.conn.writer().write(buf)?;
        self.send_tls_now()?;
        if n == 0 && !buf.is_empty() {
            // rustls holds its limit already: wait for the socket to drain.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_tls()
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(t) => t.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(t) => t.flush(),
        }
    }
}

/// The server's certificate, replaceable while connections use the old one.
#[derive(Debug)]
pub struct CertStore {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    reload_requested: AtomicBool,
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// Reads a certificate chain and its key from PEM files; the error names the file.
pub fn load_certified_key(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| format!("{}: cannot read certificates: {e}", cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: no certificate (-----BEGIN CERTIFICATE-----) in it",
            cert_file.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("{}: cannot read a private key: {e}", key_file.display()))?;
    CertifiedKey::from_der(certs, key, &provider()).map_err(|e| {
        format!(
            "{} and {}: the key does not fit the certificate: {e}",
            cert_file.display(),
            key_file.display()
        )
    })
}

fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

impl CertStore {
    /// Loads the files once; an error names the file and what is wrong.
    pub fn load(cert_file: &str, key_file: &str) -> Result<Arc<CertStore>, String> {
        let (cert_file, key_file) = (PathBuf::from(cert_file), PathBuf::from(key_file));
        let key = load_certified_key(&cert_file, &key_file)?;
        Ok(Arc::new(CertStore {
            cert_file,
            key_file,
            current: RwLock::new(Arc::new(key)),
            reload_requested: AtomicBool::new(false),
        }))
    }

    /// A rustls server configuration that always uses this store's current certificate.
    pub fn server_config(self: &Arc<Self>) -> Arc<rustls::ServerConfig> {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default TLS versions")
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        Arc::new(config)
    }

    /// Asks the watcher to read the files now (SIGHUP).
    pub fn request_reload(&self) {
        self.reload_requested.store(true, Ordering::SeqCst);
    }

    /// Re-reads the files and swaps the certificate if they load; returns what happened.
    pub fn reload(&self) -> Result<(), String> {
        let key = load_certified_key(&self.cert_file, &self.key_file)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
        Ok(())
    }

    /// Starts the thread that reloads the certificate when either file changes (its time,
    /// size or inode; symlinks followed, as Let's Encrypt's `live/` folder uses) or a reload
    /// was requested. A file that does not load is logged and the old certificate kept.
    pub fn watch(self: &Arc<Self>) -> io::Result<()> {
        let store = self.clone();
        std::thread::Builder::new()
            .name("moonrt-tls-watch".into())
            .spawn(move || {
                let mut seen = store.stamp();
                loop {
                    std::thread::sleep(WATCH_EVERY);
                    let stamp = store.stamp();
                    let asked = store.reload_requested.swap(false, Ordering::SeqCst);
                    if stamp == seen && !asked {
                        continue;
                    }
                    if stamp != seen {
                        // A renewal writes two files: give the second a moment to land.
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    seen = store.stamp();
                    match store.reload() {
                        Ok(()) => log::info!(
                            "TLS certificate reloaded from {}",
                            store.cert_file.display()
                        ),
                        Err(e) => {
                            log::error!("TLS certificate not reloaded (keeping the old): {e}")
                        }
                    }
                }
            })
            .map(|_| ())
    }

    fn stamp(&self) -> [Option<(SystemTime, u64, u64)>; 2] {
        use std::os::unix::fs::MetadataExt;
        [&self.cert_file, &self.key_file].map(|p| {
            std::fs::metadata(p).ok().map(|m| {
                (
                    m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    m.len(),
                    m.ino(),
                )
            })
        })
    }
}

/// A client configuration trusting only the certificates in `ca_pem` (PEM text): for tests
/// and deployments with their own CA.
pub fn client_config(ca_pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| format!("CA certificate: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("CA certificate: {e}"))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
