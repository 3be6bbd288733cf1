//! The Lua API as real clients see it: callbacks fire with their documented arguments and every
//! call has its documented effect. Each test runs its own script file.

mod common;

use common::*;
use moonrt::client::{Client, ClientError, Connect, Event, To};
use moonrt::core::Code;
use moonrt::core::codec::Intent;
use std::time::Duration;

#[test]
fn lifecycle_callbacks_fire_with_their_arguments() {
    let (server, _dir) = start_script(
        config(),
        r#"
        local M = {}
        function M.on_session_start(s)
          rt.session.data.started = "started " .. s.name .. " #" .. s.id
        end
        function M.on_player_connect(player, payload)
          player.data.payload = payload
          return true
        end
        function M.on_player_join(player)
          rt.send(player.peer, 900, rt.session.data.started .. "; " .. player.name .. "/" ..
            player.id .. " peer " .. player.peer .. " payload " .. player.data.payload)
        end
        function M.on_player_leave(player, reason)
          rt.send("all", 901, player.name .. " left: " .. reason)
        end
        function M.on_network_change(player, state)
          rt.send(player.peer, 902, state .. " " .. tostring(player.udp))
        end
        return M
        "#,
    );
    let mut a = Client::connect(
        server.addr,
        Connect::join_or_create("arena")
            .name("ann")
            .player_id("u1")
            .payload(b"hi"),
    )
    .unwrap();
    // The script sees the session's (random) id as the client does.
    assert_eq!(
        text_on(&mut a, 900),
        format!(
            "started arena #{}; ann/u1 peer 1 payload hi",
            a.session_id()
        )
    );
    a.bind_udp().unwrap();
    assert_eq!(text_on(&mut a, 902), "udp_bound true");
    let mut b = server.connect("arena", "bo");
    b.leave().unwrap();
    assert_eq!(text_on(&mut a, 901), "bo left: client_left");
}

#[test]
fn connect_check_refuses_with_the_scripts_reason() {
    let (server, _dir) = start_script(
        config(),
        r#"
        return {
          on_player_connect = function(player, payload)
            if payload ~= "let me in" then return false, "wrong password" end
            return true
          end,
        }
        "#,
    );
    let refused = Client::connect(server.addr, Connect::join_or_create("r").payload(b"nope"));
    match refused {
        Err(ClientError::Rejected { code, message }) => {
            assert_eq!(code, Code::RejectedByScript.as_u16());
            assert_eq!(message, "wrong password");
        }
        other => panic!("expected a rejection, got {:?}", other.map(|_| ())),
    }
    let ok = Client::connect(
        server.addr,
        Connect::join_or_create("r").payload(b"let me in"),
    );
    assert!(ok.is_ok());
}

#[test]
fn packet_handlers_cancel_rewrite_retarget_and_answer() {
    let (server, _dir) = start_script(
        config(),
        r#"
        -- GameSparks tutorial: intercept opcode 100 and reply on 101 with the server time.
        rt.on_packet(100, function(packet)
          rt.send(packet.sender, 101, string.format("%.0f", rt.time()))
          return false
        end)
        return {
          on_packet = function(packet)
            if packet.opcode == 5 then return false end                 -- cancel
            if packet.opcode == 6 then packet.payload = packet.payload:upper() end
            if packet.opcode == 7 then packet.to = { packet.sender } end -- back to sender
            return true
          end,
        }
        "#,
    );
    let mut a = server.connect("r", "a");
    let mut b = server.connect("r", "b");
    a.send(To::AllOthers, 5, Intent::Reliable, b"cancelled")
        .unwrap();
    a.send(To::AllOthers, 6, Intent::Reliable, b"shout")
        .unwrap();
    assert_eq!(
        next_delivery(&mut b).payload,
        b"SHOUT",
        "opcode 5 never arrived"
    );
    a.send(To::AllOthers, 7, Intent::Reliable, b"echo").unwrap();
    let d = next_delivery(&mut a);
    assert_eq!(
        (d.opcode, d.sender, d.payload.as_slice()),
        (7, 1, &b"echo"[..])
    );
    a.send(To::AllOthers, 100, Intent::Reliable, b"").unwrap();
    let server_ms: f64 = text_on(&mut a, 101).parse().unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as f64;
    assert!(
        (now_ms - server_ms).abs() < 5_000.0,
        "{server_ms} vs {now_ms}"
    );
    assert_no_delivery(&mut b, Duration::from_millis(100));
}

#[test]
fn server_sends_reach_all_peers_groups_and_can_speak_for_a_player() {
    let (server, _dir) = start_script(
        config(),
        r#"
        return {
          on_message = function(packet)
            local cmd = packet.payload
            if cmd == "all" then rt.send("all", 10, "to all")
            elseif cmd == "peers" then rt.send({2, 3}, 11, "to peers")
            elseif cmd == "group" then
              rt.group_add(4, 2)
              rt.send({ group = 4 }, 12, "to group")  -- runs after group_add: same callback
            elseif cmd == "as me" then
              rt.send{ to = "all", opcode = 13, payload = "from you", from = packet.sender }
            elseif cmd == "fast" then
              rt.send{ to = {2}, opcode = 14, payload = "udp", intent = "unreliable" }
            end
          end,
        }
        "#,
    );
    let mut a = server.connect("r", "a");
    let mut b = server.connect("r", "b");
    let mut c = server.connect("r", "c");
    a.send(To::Server, 1, Intent::Reliable, b"all").unwrap();
    for client in [&mut a, &mut b, &mut c] {
        let d = next_delivery(client);
        assert_eq!((d.opcode, d.sender), (10, 0), "sender 0 is the server");
    }
    a.send(To::Server, 1, Intent::Reliable, b"peers").unwrap();
    assert_eq!(text_on(&mut b, 11), "to peers");
    assert_eq!(text_on(&mut c, 11), "to peers");
    a.send(To::Server, 1, Intent::Reliable, b"group").unwrap();
    // group_add is applied first, so b hears of its membership before the group message.
    let members = b
        .wait_for(WAIT, |e| matches!(e, Event::GroupMembers { .. }))
        .unwrap();
    assert_eq!(
        members,
        Event::GroupMembers {
            group: 4,
            members: vec![2]
        }
    );
    assert_eq!(text_on(&mut b, 12), "to group");
    a.send(To::Server, 1, Intent::Reliable, b"as me").unwrap();
    let d = next_delivery(&mut c);
    assert_eq!((d.opcode, d.sender), (13, 1), "sent on behalf of peer 1");
    b.bind_udp().unwrap();
    a.send(To::Server, 1, Intent::Reliable, b"fast").unwrap();
    let fast = b
        .wait_for(WAIT, |e| matches!(e, Event::Delivery(d) if d.opcode == 14))
        .unwrap();
    assert!(
        matches!(fast, Event::Delivery(d) if d.via_udp),
        "unreliable goes over bound UDP"
    );
    assert_no_delivery(&mut a, Duration::from_millis(100));
}

#[test]
fn timers_fire_in_order_intervals_stop_themselves_and_cleared_ones_never_fire() {
    let (server, _dir) = start_script(
        config(),
        r#"
        local log = {}
        local function say(text) log[#log + 1] = text end
        return {
          on_player_join = function(player)
            rt.set_timeout(function() say("b") end, 40)
            rt.set_timeout(function() say("a") end, 20)
            local cancelled = rt.set_timeout(function() say("never") end, 30)
            rt.clear_timeout(cancelled)
            local runs = 0
            local id
            id = rt.set_interval(function()
              runs = runs + 1
              say("i" .. runs)
              if runs == 10 then rt.clear_interval(id) end
            end, 5)
            rt.set_timeout(function()
              rt.send(player.peer, 50, table.concat(log, ","))
            end, 150)
          end,
        }
        "#,
    );
    let mut a = server.connect("r", "a");
    let log = text_on(&mut a, 50);
    let parts: Vec<&str> = log.split(',').collect();
    let pos = |x: &str| {
        parts
            .iter()
            .position(|p| *p == x)
            .unwrap_or_else(|| panic!("{x} in {log}"))
    };
    assert!(pos("a") < pos("b"), "{log}");
    assert!(!parts.contains(&"never"), "{log}");
    let intervals: Vec<&str> = parts
        .iter()
        .copied()
        .filter(|p| p.starts_with('i'))
        .collect();
    assert_eq!(
        intervals,
        (1..=10).map(|i| format!("i{i}")).collect::<Vec<_>>(),
        "{log}"
    );
}

#[test]
fn tick_loop_runs_at_its_rate_and_can_end_the_session() {
    let (server, _dir) = start_script(
        config(),
        r#"
        local ticks, total = 0, 0
        return {
          on_session_start = function() rt.set_tick_rate(100) end,
          on_tick = function(dt)
            ticks = ticks + 1
            total = total + dt
            if ticks == 20 then
              rt.send("all", 60, string.format("%d %.0f", ticks, total))
              rt.end_session("game over")
            end
          end,
        }
        "#,
    );
    let mut a = server.connect("r", "a");
    let text = text_on(&mut a, 60);
    let total: f64 = text.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(text.starts_with("20 "), "{text}");
    assert!(
        total >= 150.0,
        "20 ticks at 100 Hz take about 200 ms, got {total}"
    );
    match a
        .wait_for(WAIT, |e| matches!(e, Event::Closed { .. }))
        .unwrap()
    {
        Event::Closed { code, message } => {
            assert_eq!(code, Code::SessionEnded.as_u16());
            assert_eq!(message, "game over");
        }
        _ => unreachable!(),
    }
}

#[test]
fn kick_closes_one_player_with_the_reason() {
    let (server, _dir) = start_script(
        config(),
        r#"
        return {
          on_message = function(packet)
            rt.kick(tonumber(packet.payload), "cheating")
          end,
        }
        "#,
    );
    let mut a = server.connect("r", "a");
    let mut b = server.connect("r", "b");
    a.send(To::Server, 1, Intent::Reliable, b"2").unwrap();
    match b
        .wait_for(WAIT, |e| matches!(e, Event::Closed { .. }))
        .unwrap()
    {
        Event::Closed { code, message } => {
            assert_eq!(
                (code, message.as_str()),
                (Code::Kicked.as_u16(), "cheating")
            )
        }
        _ => unreachable!(),
    }
    assert_player_left(&mut a, 2, Code::Kicked);
}

#[test]
fn players_json_and_required_modules_work() {
    let dir = TempDir::new("require");
    dir.write(
        "scoring.lua",
        "local M = {} function M.double(x) return 2 * x end return M",
    );
    let path = dir.write(
        "main.lua",
        r#"
        local scoring = require("scoring")
        return {
          on_message = function(packet)
            local req = rt.json.decode(packet.payload)
            local names = {}
            for _, p in ipairs(rt.players()) do names[#names + 1] = p.name end
            rt.send(packet.sender, 70, rt.json.encode({
              doubled = scoring.double(req.n),
              names = table.concat(names, "+"),
              me = rt.player(packet.sender).name,
            }))
          end,
        }
        "#,
    );
    let server = start_script_file(config(), &path);
    let mut a = server.connect("r", "ann");
    let _b = server.connect("r", "bo");
    a.send(To::Server, 1, Intent::Reliable, br#"{"n": 21}"#)
        .unwrap();
    let reply: serde_json::Value = serde_json::from_str(&text_on(&mut a, 70)).unwrap();
    assert_eq!(
        reply,
        serde_json::json!({"doubled": 42, "names": "ann+bo", "me": "ann"})
    );
}

#[test]
fn group_requests_can_be_refused_and_send_filters_can_block() {
    let (server, _dir) = start_script(
        config(),
        r#"
        return {
          on_group_join = function(player, group) return group ~= 13 end,
          on_group_leave = function(player, group) return group ~= 1 end,
          on_send_to_player = function(packet)
            return not string.find(packet.payload, "Reject")
          end,
          on_send_to_group = function(packet) return packet.payload ~= "blocked" end,
        }
        "#,
    );
    let mut a = server.connect("r", "a");
    let mut b = server.connect("r", "b");
    a.join_group(13).unwrap();
    let refused = a
        .wait_for(WAIT, |e| matches!(e, Event::Error { .. }))
        .unwrap();
    assert!(matches!(refused, Event::Error { code, .. } if code == Code::GroupRefused.as_u16()));
    a.join_group(1).unwrap();
    b.join_group(1).unwrap();
    a.leave_group(1).unwrap();
    let refused = a
        .wait_for(WAIT, |e| matches!(e, Event::Error { .. }))
        .unwrap();
    assert!(matches!(refused, Event::Error { code, .. } if code == Code::GroupRefused.as_u16()));
    b.send(To::Peers(vec![1]), 3, Intent::Reliable, b"please Reject me")
        .unwrap();
    b.send(To::Group(1), 3, Intent::Reliable, b"blocked")
        .unwrap();
    b.send(To::Peers(vec![1]), 3, Intent::Reliable, b"fine")
        .unwrap();
    assert_eq!(
        next_delivery(&mut a).payload,
        b"fine",
        "both filtered messages were dropped"
    );
    b.send(To::Group(1), 3, Intent::Reliable, b"team").unwrap();
    assert_eq!(
        next_delivery(&mut a).payload,
        b"team",
        "a is still in group 1"
    );
}

#[test]
fn process_callbacks_get_their_args_and_answer_health_checks() {
    use moonrt::core::Hooks;
    let dir = TempDir::new("process");
    let path = dir.write(
        "main.lua",
        r#"
        local started, stopping = nil, false
        return {
          on_process_start = function(args) started = table.concat(args, ",") end,
          on_process_terminate = function() stopping = true end,
          on_health_check = function() return started == "fleet,7" and not stopping end,
        }
        "#,
    );
    let mut config = config();
    config.script.args = vec!["fleet".into(), "7".into()];
    let source = moonrt::script::ScriptSource::read(&path).unwrap();
    let mut hooks = moonrt::script::LuaHooks::new(source, &config).unwrap();
    assert!(hooks.healthy());
    hooks.server_stopping();
    assert!(!hooks.healthy(), "terminating processes report unhealthy");
}

#[test]
fn scripts_know_the_server_id() {
    let mut c = config();
    c.server.id = "pod-7".into();
    let (server, _dir) = start_script(
        c,
        "return { on_player_join = function(p) rt.send(p.peer, 1, rt.server_id) end }",
    );
    let mut a = server.connect("r", "a");
    assert_eq!(text_on(&mut a, 1), "pod-7");
}

#[test]
fn typed_data_round_trips_between_a_rust_client_and_a_script() {
    use moonrt::rtdata::{RtData, RtValue};
    let (server, _dir) = start_script(
        config(),
        r#"
        return {
          on_message = function(packet)
            local d = rt.data.decode(packet.payload)
            local v = d[3]
            rt.send(packet.sender, 2, rt.data.encode({
              [1] = d[1] * 2,                          -- long
              [2] = d[2] .. "!",                       -- string
              [3] = rt.data.vector(v.x + 1, v.y, v.z),  -- vector
              [4] = rt.data.float(0.5),                -- float
              [5] = 2.25,                              -- double
              [6] = { [1] = d[6][1] },                 -- nested data
            }))
          end,
        }
        "#,
    );
    let mut a = server.connect("r", "a");
    let mut inner = RtData::new();
    inner.set(1, RtValue::String("deep".into()));
    let mut request = RtData::new();
    request
        .set(1, RtValue::Long(21))
        .set(2, RtValue::String("hi".into()))
        .set(3, RtValue::Vector(vec![1.0, 2.0, 3.0]))
        .set(6, RtValue::Data(inner.clone()));
    a.send(To::Server, 1, Intent::Reliable, &request.encode())
        .unwrap();
    let reply = next_delivery(&mut a);
    let reply = RtData::decode(&reply.payload).unwrap();
    assert_eq!(reply.get_long(1), Some(42));
    assert_eq!(reply.get_string(2), Some("hi!"));
    assert_eq!(reply.get(3), Some(&RtValue::Vector(vec![2.0, 2.0, 3.0])));
    assert_eq!(reply.get(4), Some(&RtValue::Float(0.5)));
    assert_eq!(reply.get(5), Some(&RtValue::Double(2.25)));
    assert_eq!(reply.get(6), Some(&RtValue::Data(inner)));
}

#[test]
fn properties_changes_can_be_refused_and_scripts_can_set_them() {
    let (server, _dir) = start_script(
        config(),
        r#"
        return {
          -- MGOBE onChangeCustomPlayerStatus / onChangeRoom.
          on_player_props = function(player, props) return props ~= "cheater" end,
          on_session_props = function(player, props)
            if player.peer ~= 1 then return false end      -- only the host changes the room
            rt.send("all", 40, "room by " .. player.name .. ": " .. props)
            return true
          end,
          on_message = function(packet)
            rt.set_player_props(packet.sender, "promoted")
            rt.set_session_props("round=2")
            rt.send(packet.sender, 41, rt.player(packet.sender).props .. " " .. rt.session.props)
          end,
        }
        "#,
    );
    let mut host = server.connect("r", "host");
    let mut guest = server.connect("r", "guest");
    guest.set_player_props(b"cheater").unwrap();
    let refused = guest
        .wait_for(WAIT, |e| matches!(e, Event::Error { .. }))
        .unwrap();
    assert!(matches!(refused, Event::Error { code, .. } if code == Code::PropsRefused.as_u16()));
    guest.set_session_props(b"map=evil").unwrap();
    let refused = guest
        .wait_for(WAIT, |e| matches!(e, Event::Error { .. }))
        .unwrap();
    assert!(matches!(refused, Event::Error { code, .. } if code == Code::PropsRefused.as_u16()));
    host.set_session_props(b"map=2").unwrap();
    assert_eq!(text_on(&mut guest, 40), "room by host: map=2");
    let room = guest
        .wait_for(WAIT, |e| matches!(e, Event::SessionProps { .. }))
        .unwrap();
    assert_eq!(
        room,
        Event::SessionProps {
            by: 1,
            props: b"map=2".to_vec()
        }
    );
    guest.send(To::Server, 1, Intent::Reliable, b"").unwrap();
    assert_eq!(text_on(&mut guest, 41), "promoted round=2");
    let mine = host
        .wait_for(WAIT, |e| matches!(e, Event::PlayerProps { .. }))
        .unwrap();
    assert_eq!(
        mine,
        Event::PlayerProps {
            peer: 2,
            props: b"promoted".to_vec()
        }
    );
}

#[test]
fn group_change_reports_the_new_members() {
    let (server, _dir) = start_script(
        config(),
        r#"
        return {
          on_group_change = function(group, members)
            rt.send("all", 80, group .. ":" .. table.concat(members, ",")
              .. " seen as " .. table.concat(rt.group_members(group), ","))
          end,
        }
        "#,
    );
    let mut a = server.connect("r", "a");
    let mut b = server.connect("r", "b");
    a.join_group(6).unwrap();
    assert_eq!(text_on(&mut b, 80), "6:1 seen as 1");
    b.join_group(6).unwrap();
    assert_eq!(text_on(&mut b, 80), "6:1,2 seen as 1,2");
    a.leave_group(6).unwrap();
    assert_eq!(text_on(&mut b, 80), "6:2 seen as 2");
}

#[test]
fn session_end_runs_when_the_last_player_leaves() {
    use moonrt::core::codec::{ClientMsg, Hello, JoinMode};
    use moonrt::core::{Server, WallClock};
    let dir = TempDir::new("end");
    let path = dir.write(
        "main.lua",
        // The only channel out of a state whose players are gone: an error the host counts.
        r#"return { on_session_end = function() error("ended " .. rt.session.name) end }"#,
    );
    let config = config();
    let source = moonrt::script::ScriptSource::read(&path).unwrap();
    let hooks = moonrt::script::LuaHooks::new(source, &config).unwrap();
    let now = std::time::Instant::now();
    let mut core = Server::new(
        config,
        0,
        hooks,
        WallClock {
            at: now,
            unix_us: 0,
        },
        moonrt::core::Entropy::seeded(7),
    );
    let id = core.handle_accept(now, "127.0.0.1:1".parse().unwrap());
    let mut bytes = Vec::new();
    ClientMsg::Hello(Hello {
        version: 1,
        mode: JoinMode::JoinOrCreate("finale"),
        token: "",
        player_id: "",
        player_name: "p",
        payload: b"",
        stray_field: None,
    })
    .encode(&mut bytes);
    ClientMsg::Leave.encode(&mut bytes);
    assert_eq!(core.hooks_mut().session_count(), 0);
    core.handle_tcp_bytes(now, id, &bytes);
    assert_eq!(
        core.session_count(),
        0,
        "linger 0: the session ended with its last player"
    );
    assert_eq!(core.hooks_mut().session_count(), 0, "its Lua state is gone");
    assert_eq!(
        core.hooks_mut().error_count(),
        1,
        "on_session_end ran (and raised)"
    );
}

#[test]
fn the_empty_target_error_reads_as_one_clean_sentence() {
    let (server, _dir) = start_script(
        config(),
        r#"return { on_player_join = function(p)
             local ok, err = pcall(rt.send, {}, 1, "x")
             rt.send(p.peer, 9, (tostring(err):match("[^\n]*")))
           end }"#,
    );
    let mut ann = server.connect("room", "ann");
    let message = text_on(&mut ann, 9);
    assert!(
        message.ends_with(
            "the target list is empty, so the message would reach nobody; use \"all\" to send \
             to every player"
        ),
        "{message:?}"
    );
    assert!(!message.contains("  "), "a run of spaces in {message:?}");
}
