//! `moonrt test`: the shipped tests of the example scripts pass, and a failing expectation is
//! reported with its file:line and exit status 1, as a studio's CI needs.

mod common;

use common::*;

fn moonrt_test(args: &[&str], dir: &std::path::Path) -> (bool, String) {
    let mut all = vec!["test"];
    all.extend_from_slice(args);
    let out = run_moonrt(&all, dir);
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_shipped_example_tests_pass() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let (ok, out) = moonrt_test(&["lua/tests"], root);
    assert!(ok, "{out}");
    assert!(
        out.contains("ok   an empty session ends after the minimum time"),
        "{out}"
    );
    assert!(out.contains(" 0 failed"), "{out}");
}

#[test]
fn a_failing_test_names_its_file_and_line_and_exits_1() {
    let dir = TempDir::new("moonrt-test");
    dir.write(
        "main.lua",
        r#"return { on_message = function(p) rt.send(p.sender, 2, "pong " .. p.payload) end }"#,
    );
    dir.write(
        "echo_test.lua",
        r#"
test("answers", function()
  local sim = session{ script = "main.lua" }
  local a = sim:join("a")
  a:send("server", 1, "x")
  expect_eq(deliveries(a:received(), 2)[1].payload, "pong x")
end)

test("a wrong expectation", function()
  local sim = session{ script = "main.lua" }
  local a = sim:join("a")
  a:send("server", 1, "y")
  expect_eq(deliveries(a:received(), 2)[1].payload, "pong z")
end)
"#,
    );
    let (ok, out) = moonrt_test(&["echo_test.lua"], &dir.0);
    assert!(!ok, "{out}");
    assert!(out.contains("ok   answers"), "{out}");
    assert!(
        out.contains("FAIL a wrong expectation")
            && out.contains("echo_test.lua:13: expected \"pong z\", got \"pong y\""),
        "{out}"
    );
    assert!(out.contains("2 test(s), 1 failed"), "{out}");
    // A test file that does not load is an error too.
    dir.write("broken_test.lua", "test(");
    let (ok, out) = moonrt_test(&["broken_test.lua"], &dir.0);
    assert!(!ok && out.contains("broken_test.lua"), "{out}");
}
