//! `rt.http.request` against a real HTTP server started by the test (tiny_http on 127.0.0.1):
//! answers reach the script's callback in its session; time, size, redirect and allow-list
//! limits hold; and the loop keeps relaying while a request waits.

mod common;

use common::*;
use moonrt::client::{Client, Connect, To};
use moonrt::core::codec::Intent;
use std::time::{Duration, Instant};

/// A backend: POST /score echoes its body; /slow answers after 2 s; /big sends 200 kB;
/// /redirect points elsewhere.
fn backend() -> std::net::SocketAddr {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let addr = server.server_addr().to_ip().unwrap();
    std::thread::spawn(move || {
        for mut request in server.incoming_requests() {
            let url = request.url().to_owned();
            std::thread::spawn(move || {
                let mut body = String::new();
                let _ = request.as_reader().read_to_string(&mut body);
                let header = |k: &str, v: &str| tiny_http::Header::from_bytes(k, v).unwrap();
                let response = match url.as_str() {
                    "/score" => tiny_http::Response::from_string(format!("saved {body}"))
                        .with_header(header("X-Moonrt-Test", "yes")),
                    "/slow" => {
                        std::thread::sleep(Duration::from_secs(2));
                        tiny_http::Response::from_string("late")
                    }
                    "/big" => tiny_http::Response::from_string("x".repeat(200_000)),
                    "/redirect" => tiny_http::Response::from_string("moved")
                        .with_status_code(302)
                        .with_header(header("Location", "http://127.0.0.2:1/elsewhere")),
                    _ => tiny_http::Response::from_string("no").with_status_code(404),
                };
                let _ = request.respond(response);
            });
        }
    });
    addr
}

fn script(base: &str) -> String {
    format!(
        r#"
local BASE = "{base}"
local function answer(to, opcode)
  return function(res, err)
    if res then
      rt.send(to, opcode, res.status .. " " .. res.body:sub(1, 40) .. " " .. tostring(res.headers["x-moonrt-test"]))
    else
      rt.send(to, opcode, "error " .. err)
    end
  end
end
return {{
  on_message = function(packet)
    local to = packet.sender
    if packet.opcode == 1 then
      rt.http.request({{ method = "POST", url = BASE .. "/score", body = packet.payload,
        headers = {{ ["content-type"] = "text/plain" }} }}, answer(to, 100))
    elseif packet.opcode == 2 then
      rt.http.request({{ url = BASE .. "/slow", timeout_ms = 300 }}, answer(to, 101))
    elseif packet.opcode == 3 then
      local ok, err = pcall(rt.http.request, {{ url = "http://127.0.0.2:9/x" }}, answer(to, 0))
      rt.send(to, 102, tostring(ok) .. " " .. tostring(err))
    elseif packet.opcode == 4 then
      rt.http.request({{ url = BASE .. "/big" }}, answer(to, 103))
    elseif packet.opcode == 5 then
      rt.http.request({{ url = BASE .. "/redirect" }}, answer(to, 104))
    end
  end,
}}
"#
    )
}

#[test]
fn a_script_calls_its_backend_and_gets_the_answer_in_a_callback() {
    let backend = backend();
    let mut c = config();
    c.script.http_allow = vec![backend.to_string()];
    c.script.http_max_body_bytes = 100_000;
    let (server, _dir) = start_script(c, &script(&format!("http://{backend}")));
    let mut a = Client::connect(server.addr, Connect::join_or_create("r")).unwrap();
    let mut b = Client::connect(server.addr, Connect::join_or_create("r")).unwrap();

    a.send(To::Server, 1, Intent::Reliable, b"score=42")
        .unwrap();
    assert_eq!(text_on(&mut a, 100), "200 saved score=42 yes");

    // A slow backend: the script's own timeout (300 ms) ends it; meanwhile the loop relays.
    a.send(To::Server, 2, Intent::Reliable, b"").unwrap();
    let sent = Instant::now();
    a.send(To::AllOthers, 7, Intent::Reliable, b"not blocked")
        .unwrap();
    assert_eq!(next_delivery(&mut b).payload, b"not blocked");
    assert!(
        sent.elapsed() < Duration::from_millis(250),
        "{:?}",
        sent.elapsed()
    );
    let timed_out = text_on(&mut a, 101);
    assert!(timed_out.starts_with("error "), "{timed_out}");

    // Not on the allow-list: refused at once, in the script.
    a.send(To::Server, 3, Intent::Reliable, b"").unwrap();
    let refused = text_on(&mut a, 102);
    assert!(
        refused.starts_with("false") && refused.contains("not in [script] http_allow"),
        "{refused}"
    );

    // Over the body limit: an error, not a 200 kB string in the session.
    a.send(To::Server, 4, Intent::Reliable, b"").unwrap();
    let too_big = text_on(&mut a, 103);
    assert!(too_big.starts_with("error "), "{too_big}");

    // A redirect is not followed (it could lead off the allow-list).
    a.send(To::Server, 5, Intent::Reliable, b"").unwrap();
    assert!(text_on(&mut a, 104).starts_with("302 moved"));
}

#[test]
fn rt_http_is_off_without_an_allow_list() {
    let (server, _dir) = start_script(
        config(),
        r#"
        return { on_message = function(packet)
          local ok, err = pcall(rt.http.request, { url = "http://127.0.0.1:1/" }, function() end)
          rt.send(packet.sender, 100, tostring(err))
        end }
        "#,
    );
    let mut a = server.connect("r", "a");
    a.send(To::Server, 1, Intent::Reliable, b"").unwrap();
    assert!(text_on(&mut a, 100).contains("rt.http is off"));
}
