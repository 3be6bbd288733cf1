//! The benchmark suite still runs: `moonrt-bench smoke` drives every scenario at a tiny scale
//! against the real `moonrt` binary and the floor reflector. No timing is asserted (the figures
//! belong in BENCHMARKS.md, not in a test); only that each scenario produced its results.

use std::process::Command;

#[test]
fn every_benchmark_scenario_runs_and_writes_its_results() {
    let out = std::env::temp_dir().join(format!("moonrt-bench-smoke-{}", std::process::id()));
    let run = Command::new(env!("CARGO_BIN_EXE_moonrt-bench"))
        .arg("smoke")
        .arg("--server-bin")
        .arg(env!("CARGO_BIN_EXE_moonrt"))
        .arg("--out")
        .arg(&out)
        .output()
        .expect("moonrt-bench runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "moonrt-bench smoke failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("all scenarios ran"), "{stdout}");
    for scenario in [
        "relay-udp",
        "relay-tcp",
        "lua-intercept",
        "relay-coalesced",
        "relay-ws",
        "idle-memory",
        "timers",
        "reload",
        "containment",
    ] {
        let path = out.join(format!("{scenario}.json"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{} was not written: {e}", path.display()));
        let json: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert!(
            json["machine"]["cpus"].as_u64().unwrap_or(0) >= 1,
            "{scenario}: {json}"
        );
    }
    let relay: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("relay-udp.json")).unwrap())
            .unwrap();
    let systems: Vec<&str> = relay["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["system"].as_str().unwrap())
        .collect();
    assert_eq!(systems, ["moonrt", "floor (naive)", "floor (batched)"]);
    for step in relay["steps"].as_array().unwrap() {
        let delivered = step["outcome"]["delivered"].as_u64().unwrap();
        assert!(delivered > 0, "every system relayed something: {step}");
    }
    let _ = std::fs::remove_dir_all(&out);
}
