//! TLS on real sockets: a throwaway CA and certificate per test, the Rust client over TLS in a
//! session with a plaintext client, `wss://` with a rustls WebSocket client, Python's `ssl`
//! module and a real headless Chromium, and a certificate swapped on disk taking effect without
//! a restart or a dropped connection.

mod common;

use common::*;
use moonrt::client::{Client, Connect, Event, To};
use moonrt::config::Config;
use moonrt::core::codec::{self, ClientMsg, Data, Hello, Intent, JoinMode, ServerMsg, Target};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::CertificateDer;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A throwaway CA that signs certificates for localhost.
struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    fn new() -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "moonrt test CA");
        TestCa {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A new certificate (and key) for localhost and 127.0.0.1, as PEM, with its DER.
    fn leaf(&self) -> (String, String, Vec<u8>) {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }

    fn client_config(&self) -> Arc<rustls::ClientConfig> {
        moonrt::tls::client_config(self.pem().as_bytes()).unwrap()
    }
}

/// A config with both TLS listeners on loopback, using a fresh leaf certificate in `dir`.
fn tls_config(ca: &TestCa, dir: &TempDir) -> Config {
    let (cert, key, _) = ca.leaf();
    let mut c = config();
    c.tls.listen = "127.0.0.1:0".into();
    c.tls.ws_listen = "127.0.0.1:0".into();
    c.tls.cert_file = dir.write("cert.pem", &cert).display().to_string();
    c.tls.key_file = dir.write("key.pem", &key).display().to_string();
    c
}

fn hello_frame(room: &str, name: &str) -> Vec<u8> {
    let mut frame = Vec::new();
    ClientMsg::Hello(Hello {
        version: 1,
        mode: JoinMode::JoinOrCreate(room),
        token: "",
        player_id: "",
        player_name: name,
        payload: b"",
        stray_field: None,
    })
    .encode(&mut frame);
    frame
}

fn data_frame(opcode: u32, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    ClientMsg::Data(Data {
        intent: Intent::Reliable,
        opcode,
        target: Target::AllOthers,
        payload,
    })
    .encode(&mut frame);
    frame
}

/// The certificate a fresh TLS handshake to `addr` is shown.
fn presented_certificate(addr: std::net::SocketAddr, ca: &TestCa) -> Vec<u8> {
    let name = "localhost".try_into().unwrap();
    let mut conn = rustls::ClientConnection::new(ca.client_config(), name).unwrap();
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).unwrap();
    }
    let certs: &[CertificateDer<'_>] = conn.peer_certificates().unwrap();
    certs[0].to_vec()
}

#[test]
fn a_tls_client_and_a_plaintext_client_share_a_session() {
    let ca = TestCa::new();
    let dir = TempDir::new("tls");
    let server = TestServer::start(tls_config(&ca, &dir));
    let mut secure = Client::connect(
        server.tls.unwrap(),
        Connect::join_or_create("arena")
            .name("secure")
            .tls(ca.client_config(), "localhost"),
    )
    .unwrap();
    let mut plain = server.connect("arena", "plain");
    assert_eq!(plain.session_id(), secure.session_id());
    secure
        .send(To::AllOthers, 7, Intent::Reliable, b"over tls")
        .unwrap();
    let d = next_delivery(&mut plain);
    assert_eq!((d.opcode, &d.payload[..]), (7, &b"over tls"[..]));
    // A bigger burst the other way: many records, in order.
    for i in 0..200u32 {
        plain
            .send(
                To::AllOthers,
                8,
                Intent::Reliable,
                &i.to_le_bytes().repeat(64),
            )
            .unwrap();
    }
    for i in 0..200u32 {
        let d = next_delivery(&mut secure);
        assert_eq!(d.payload, i.to_le_bytes().repeat(64));
    }
}

#[test]
fn a_client_that_does_not_trust_the_certificate_gets_no_session() {
    let ca = TestCa::new();
    let dir = TempDir::new("tls-untrusted");
    let server = TestServer::start(tls_config(&ca, &dir));
    let stranger = TestCa::new();
    let result = Client::connect(
        server.tls.unwrap(),
        Connect::join_or_create("arena")
            .tls(stranger.client_config(), "localhost")
            .timeout(Duration::from_secs(2)),
    );
    assert!(result.is_err(), "connected with an untrusted certificate");
    // Plaintext bytes sent to the TLS port are not a session either, and the server goes on.
    let mut raw = TcpStream::connect(server.tls.unwrap()).unwrap();
    raw.set_read_timeout(Some(WAIT)).unwrap();
    raw.write_all(&hello_frame("arena", "plain")).unwrap();
    let mut buf = [0u8; 256];
    let n = raw.read(&mut buf).unwrap_or(0);
    assert!(
        n == 0 || buf[0] == 0x15,
        "a TLS alert (0x15) or a close, not a WELCOME"
    );
    Client::connect(
        server.tls.unwrap(),
        Connect::join_or_create("arena").tls(ca.client_config(), "localhost"),
    )
    .unwrap();
}

#[test]
fn wss_carries_the_native_protocol_for_a_rustls_websocket_client() {
    let ca = TestCa::new();
    let dir = TempDir::new("wss");
    let server = TestServer::start(tls_config(&ca, &dir));
    let addr = server.wss.unwrap();
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let conn =
        rustls::ClientConnection::new(ca.client_config(), "localhost".try_into().unwrap()).unwrap();
    let tls = rustls::StreamOwned::new(conn, sock);
    let (mut ws, _) =
        tungstenite::client(format!("wss://localhost:{}/", addr.port()), tls).unwrap();
    ws.send(tungstenite::Message::Binary(
        hello_frame("arena", "web").into(),
    ))
    .unwrap();
    let welcome = ws.read().unwrap().into_data();
    let (body, _) = codec::split_frame(&welcome, usize::MAX).unwrap().unwrap();
    assert!(matches!(
        ServerMsg::decode(body).unwrap(),
        ServerMsg::Welcome(_)
    ));
    let mut plain = server.connect("arena", "plain");
    ws.send(tungstenite::Message::Binary(
        data_frame(9, b"via wss").into(),
    ))
    .unwrap();
    let d = next_delivery(&mut plain);
    assert_eq!((d.opcode, &d.payload[..]), (9, &b"via wss"[..]));
}

#[test]
fn python_ssl_joins_over_tls() {
    let ca = TestCa::new();
    let dir = TempDir::new("tls-python");
    let server = TestServer::start(tls_config(&ca, &dir));
    let ca_file = dir.write("ca.pem", &ca.pem());
    let hello: String = hello_frame("arena", "py")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // Python's standard library only: verify against the test CA, send HELLO, read WELCOME's
    // type byte and peer id.
    let script = format!(
        r#"
import socket, ssl, struct
ctx = ssl.create_default_context(cafile={ca:?})
with socket.create_connection(("127.0.0.1", {port}), timeout=5) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(bytes.fromhex("{hello}"))
        head = b""
        while len(head) < 8:
            head += s.recv(8 - len(head))
        length, kind, version, peer = struct.unpack("<IBHB", head)
        print(s.version(), hex(kind), peer)
"#,
        ca = ca_file.display().to_string(),
        port = server.tls.unwrap().port(),
    );
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("0x81 1"), "WELCOME as peer 1: {stdout}");
    assert!(stdout.starts_with("TLSv1.3"), "{stdout}");
}

#[test]
fn a_certificate_swapped_on_disk_takes_effect_without_a_restart_or_a_dropped_connection() {
    let ca = TestCa::new();
    let dir = TempDir::new("tls-swap");
    let config = tls_config(&ca, &dir);
    let first = std::fs::read_to_string(&config.tls.cert_file).unwrap();
    let server = TestServer::start(config.clone());
    let addr = server.tls.unwrap();
    let first_der = presented_certificate(addr, &ca);
    let mut open = Client::connect(
        addr,
        Connect::join_or_create("arena").tls(ca.client_config(), "localhost"),
    )
    .unwrap();
    // A broken file (a renewal half written) is refused; the old certificate stays in use.
    std::fs::write(
        &config.tls.cert_file,
        "-----BEGIN CERTIFICATE-----\nnot base64\n",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(2600));
    assert_eq!(presented_certificate(addr, &ca), first_der);
    std::fs::write(&config.tls.cert_file, first).unwrap();
    // The renewal: a new key and certificate written over the old files.
    let (cert, key, der) = ca.leaf();
    std::fs::write(&config.tls.key_file, key).unwrap();
    std::fs::write(&config.tls.cert_file, cert).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while presented_certificate(addr, &ca) != der {
        assert!(
            Instant::now() < deadline,
            "the new certificate was never used"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The connection made with the old certificate is still in its session.
    let mut fresh = Client::connect(
        addr,
        Connect::join_or_create("arena").tls(ca.client_config(), "localhost"),
    )
    .unwrap();
    open.send(To::AllOthers, 5, Intent::Reliable, b"still here")
        .unwrap();
    let d = next_delivery(&mut fresh);
    assert_eq!(&d.payload[..], b"still here");
    open.ping().unwrap();
    assert!(
        open.wait_for(WAIT, |e| matches!(e, Event::Pong { .. }))
            .is_ok()
    );
}

#[test]
fn headless_chromium_opens_wss_and_messages_a_native_client() {
    let Some(chromium) = chromium() else {
        return;
    };
    let ca = TestCa::new();
    let dir = TempDir::new("tls-chromium");
    let server = TestServer::start(tls_config(&ca, &dir));
    let mut native = server.connect("browser-room", "native");
    let bytes = |frame: Vec<u8>| {
        frame
            .iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let page = dir.write(
        "page.html",
        &format!(
            r#"<!doctype html><title>moonrt wss</title><script>
const ws = new WebSocket("wss://localhost:{port}/");
ws.binaryType = "arraybuffer";
ws.onopen = () => ws.send(new Uint8Array([{hello}]));
ws.onmessage = (e) => {{
  const b = new Uint8Array(e.data);
  if (b[4] === 0x81) ws.send(new Uint8Array([{data}]));
}};
</script>"#,
            port = server.wss.unwrap().port(),
            hello = bytes(hello_frame("browser-room", "chromium")),
            data = bytes(data_frame(11, b"hello from chromium")),
        ),
    );
    let profile = dir.0.join("profile");
    let mut browser = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            // The certificate is from a throwaway CA the browser does not know.
            "--ignore-certificate-errors",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("file://{}", page.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let got = native.wait_for(
        Duration::from_secs(30),
        |e| matches!(e, Event::Delivery(d) if d.opcode == 11),
    );
    let _ = browser.kill();
    let _ = browser.wait();
    match got {
        Ok(Event::Delivery(d)) => assert_eq!(&d.payload[..], b"hello from chromium"),
        other => panic!("no message from chromium over wss: {other:?}"),
    }
}
