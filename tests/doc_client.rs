//! PROTOCOL.md is enough to write a client: `doc_client.py`, written from the document alone in
//! another language, plays a whole session against a real server.

mod common;

use common::*;
use std::process::Command as Process;
use std::time::{Duration, Instant};

#[test]
fn a_python_client_written_from_protocol_md_completes_a_session() {
    let server = TestServer::start_with(config(), Reverser);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/doc_client.py");
    let mut child = Process::new("python3")
        .arg(script)
        .arg(server.addr.to_string())
        .arg("doc-room")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is needed for this test (the machine image ships CPython 3)");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("doc_client.py did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("session complete"),
        "doc_client.py failed:\n{stdout}\n{stderr}"
    );
}
