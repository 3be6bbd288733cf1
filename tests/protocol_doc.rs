//! PROTOCOL.md's worked examples are exactly what the codec produces, and every code is listed.
//!
//! Each example in the document is a ```hex block preceded by `<!-- bytes: NAME -->`; lines in
//! the block starting with `#` are field labels. This test encodes NAME with the real codec and
//! compares byte for byte, so the document cannot drift from the code.

use moonrt::core::Code;
use moonrt::core::codec::{
    ClientMsg, Data, FrameInputs, Hello, Intent, JoinMode, PeerInfo, PeerList, ServerMsg, Target,
    Welcome, encode_peer_list,
};
use std::collections::BTreeMap;

fn udp(conn_id: u32, secret: u64, frames: &[u8]) -> Vec<u8> {
    let mut d = conn_id.to_le_bytes().to_vec();
    d.extend_from_slice(&secret.to_le_bytes());
    d.extend_from_slice(frames);
    d
}

fn client(msg: ClientMsg<'_>) -> Vec<u8> {
    let mut b = Vec::new();
    msg.encode(&mut b);
    b
}

fn server(msg: ServerMsg<'_>) -> Vec<u8> {
    let mut b = Vec::new();
    msg.encode(&mut b);
    b
}

const SECRET: u64 = 0x0123_4567_89ab_cdef;

fn examples() -> BTreeMap<&'static str, Vec<u8>> {
    let peers23 = encode_peer_list(&[2, 3]);
    let members12 = encode_peer_list(&[1, 2]);
    let data = |intent, target, payload: &'static [u8]| {
        client(ClientMsg::Data(Data {
            intent,
            opcode: 7,
            target,
            payload,
        }))
    };
    let mut m = BTreeMap::new();
    m.insert(
        "hello",
        client(ClientMsg::Hello(Hello {
            version: 1,
            mode: JoinMode::JoinOrCreate("lobby"),
            token: "",
            player_id: "p1",
            player_name: "Ann",
            payload: &[0xab],
            stray_field: None,
        })),
    );
    m.insert(
        "hello_join_id",
        client(ClientMsg::Hello(Hello {
            version: 1,
            mode: JoinMode::JoinId(1),
            token: "t",
            player_id: "",
            player_name: "Bo",
            payload: &[],
            stray_field: None,
        })),
    );
    m.insert("data_all", data(Intent::Reliable, Target::AllOthers, b"hi"));
    m.insert(
        "data_peers",
        data(
            Intent::Unreliable,
            Target::Peers(PeerList::from_wire(&peers23)),
            b"hi",
        ),
    );
    m.insert(
        "data_group",
        data(Intent::UnreliableSequenced, Target::Group(5), b"hi"),
    );
    m.insert("data_server", data(Intent::Reliable, Target::Server, b"hi"));
    m.insert("group_join", client(ClientMsg::GroupJoin(5)));
    m.insert("group_leave", client(ClientMsg::GroupLeave(5)));
    m.insert("group_query", client(ClientMsg::GroupQuery(5)));
    m.insert("ping", client(ClientMsg::Ping { client_time: 1000 }));
    m.insert("leave", client(ClientMsg::Leave));
    m.insert("udp_bind", udp(3, SECRET, &client(ClientMsg::UdpBind)));
    m.insert(
        "udp_data",
        udp(
            3,
            SECRET,
            &data(Intent::Unreliable, Target::AllOthers, b"hi"),
        ),
    );
    m.insert(
        "welcome",
        server(ServerMsg::Welcome(Welcome {
            version: 1,
            peer: 2,
            session_id: 1,
            udp_conn_id: 3,
            udp_secret: SECRET,
            udp_port: 7777,
            server_time_us: 1_700_000_000_000_000,
            idle_timeout_ms: 30_000,
            max_frame_bytes: 65_536,
            session_name: "lobby",
            peers: vec![PeerInfo {
                peer: 1,
                player_id: "p0",
                name: "Bo",
            }],
            reconnect_secret: 0x1122_3344_5566_7788,
        })),
    );
    m.insert(
        "hello_reconnect",
        client(ClientMsg::Hello(Hello {
            version: 1,
            mode: JoinMode::Reconnect(1),
            token: "",
            player_id: "",
            player_name: "",
            payload: &[0x02, 0x00, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11],
            stray_field: None,
        })),
    );
    vendor_examples(&mut m);
    m.insert(
        "hello_join_any",
        client(ClientMsg::Hello(Hello {
            version: 1,
            mode: JoinMode::JoinAny("mode=duel"),
            token: "",
            player_id: "",
            player_name: "Ann",
            payload: &[],
            stray_field: None,
        })),
    );
    m.insert(
        "frame_sync",
        client(ClientMsg::FrameSync { on: true, rate: 15 }),
    );
    m.insert("frame_input", client(ClientMsg::FrameInput(b"up")));
    m.insert(
        "frame_request",
        client(ClientMsg::FrameRequest { from: 9, count: 3 }),
    );
    m.insert(
        "frame_sync_state",
        server(ServerMsg::FrameSyncState {
            on: true,
            rate: 15,
            seed: 0x1234_5678,
            next_frame: 1,
        }),
    );
    let frame_inputs = FrameInputs::encode(&[(2, b"up".to_vec()), (0, Vec::new())]);
    m.insert(
        "frame",
        server(ServerMsg::Frame {
            number: 7,
            seed: 0x1234_5678,
            inputs: FrameInputs(&frame_inputs),
        }),
    );
    m.insert("player_away", server(ServerMsg::PlayerAway { peer: 3 }));
    m.insert("player_back", server(ServerMsg::PlayerBack { peer: 3 }));
    m.insert(
        "reject",
        server(ServerMsg::Reject {
            code: 12,
            message: "full",
        }),
    );
    m.insert(
        "delivery",
        server(ServerMsg::Delivery {
            intent: Intent::Unreliable,
            opcode: 7,
            sender: 2,
            seq: 1,
            payload: b"hi",
        }),
    );
    m.insert(
        "player_joined",
        server(ServerMsg::PlayerJoined(PeerInfo {
            peer: 3,
            player_id: "p3",
            name: "Cy",
        })),
    );
    m.insert(
        "player_left",
        server(ServerMsg::PlayerLeft {
            peer: 3,
            reason: 25,
        }),
    );
    m.insert(
        "group_members",
        server(ServerMsg::GroupMembers {
            group: 5,
            members: PeerList::from_wire(&members12),
        }),
    );
    m.insert(
        "pong",
        server(ServerMsg::Pong {
            client_time: 1000,
            server_time_us: 1_700_000_000_000_000,
        }),
    );
    m.insert(
        "close",
        server(ServerMsg::Close {
            code: 22,
            message: "bye",
        }),
    );
    m.insert(
        "error",
        server(ServerMsg::Error {
            code: 31,
            message: "no 9",
            detail: 9,
        }),
    );
    m.insert("udp_bound", server(ServerMsg::UdpBound));
    m.insert(
        "set_player_props",
        client(ClientMsg::SetPlayerProps(b"ready")),
    );
    m.insert(
        "set_session_props",
        client(ClientMsg::SetSessionProps(b"map=2")),
    );
    m.insert(
        "player_props",
        server(ServerMsg::PlayerProps {
            peer: 2,
            props: b"ready",
        }),
    );
    m.insert(
        "session_props",
        server(ServerMsg::SessionProps {
            by: 1,
            props: b"map=2",
        }),
    );
    m
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// NAME -> bytes, from the document.
fn documented() -> BTreeMap<String, Vec<u8>> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/PROTOCOL.md"))
        .expect("PROTOCOL.md");
    let mut out = BTreeMap::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line
            .trim()
            .strip_prefix("<!-- bytes: ")
            .and_then(|r| r.strip_suffix(" -->"))
        else {
            continue;
        };
        assert_eq!(lines.next().map(str::trim), Some("```hex"), "{name}");
        let mut bytes = Vec::new();
        for line in lines.by_ref() {
            let line = line.trim();
            if line == "```" {
                break;
            }
            if line.starts_with('#') {
                continue;
            }
            for token in line.split_whitespace() {
                bytes.push(
                    u8::from_str_radix(token, 16)
                        .unwrap_or_else(|_| panic!("{name}: bad hex {token:?}")),
                );
            }
        }
        assert!(out.insert(name.to_owned(), bytes).is_none(), "{name} twice");
    }
    out
}

#[test]
fn every_worked_example_in_protocol_md_matches_the_codec() {
    let doc = documented();
    let mut problems = Vec::new();
    for (name, bytes) in examples() {
        match doc.get(name) {
            None => problems.push(format!("{name}: missing; expected\n{}", hex(&bytes))),
            Some(d) if *d != bytes => problems.push(format!(
                "{name}: document has\n{}\ncodec makes\n{}",
                hex(d),
                hex(&bytes)
            )),
            Some(_) => {}
        }
    }
    for name in doc.keys() {
        if !examples().contains_key(name.as_str()) {
            problems.push(format!("{name}: documented but not checked"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn every_code_is_in_the_protocol_table() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/PROTOCOL.md"))
        .expect("PROTOCOL.md");
    for code in Code::ALL {
        let row = format!("| {} | `{:?}` |", code.as_u16(), code);
        assert!(doc.contains(&row), "PROTOCOL.md lacks the row {row}");
    }
}

/// Sections 16 and 17: what the vendor clients send (encoded with the schemas the server decodes
/// with) and what the server's translation answers.
fn vendor_examples(m: &mut BTreeMap<&'static str, Vec<u8>>) {
    use moonrt::profiles::{Adapter, FirstMessage, gamelift, gamesparks};
    use prost::Message;
    let delimited = |msg: &dyn Fn(&mut Vec<u8>)| {
        let mut body = Vec::new();
        msg(&mut body);
        let mut out = Vec::new();
        prost::encoding::encode_varint(body.len() as u64, &mut out);
        out.extend_from_slice(&body);
        out
    };
    let welcome = server(ServerMsg::Welcome(Welcome {
        version: 1,
        peer: 2,
        session_id: 1,
        udp_conn_id: 3,
        udp_secret: SECRET,
        udp_port: 7777,
        server_time_us: 0,
        idle_timeout_ms: 30_000,
        max_frame_bytes: 65_536,
        session_name: "match-1",
        peers: vec![PeerInfo {
            peer: 1,
            player_id: "",
            name: "Bo",
        }],
        reconnect_secret: 0,
    }));
    let mut rtdata = moonrt::rtdata::RtData::new();
    rtdata.set(1, moonrt::rtdata::RtValue::Long(42));
    let delivery = server(ServerMsg::Delivery {
        intent: Intent::Reliable,
        opcode: 5,
        sender: 1,
        seq: 1,
        payload: &rtdata.encode(),
    });
    let answer = |login: &[u8], native: &[u8]| {
        let FirstMessage::Vendor(mut adapter) = Adapter::detect(login) else {
            panic!("the login is not recognised");
        };
        adapter
            .take_client_message(login, &mut Vec::new())
            .expect("the login is accepted");
        let (mut out, mut ends) = (Vec::new(), Vec::new());
        adapter.write_for_client(native, &mut out, &mut ends);
        out
    };

    let gs_login = delimited(&|b| {
        gamesparks::Packet {
            op_code: Some(0),
            payload: Some(
                gamesparks::LoginCommand {
                    token: Some("match-1".into()),
                    client_version: Some(2),
                }
                .encode_to_vec(),
            ),
            ..Default::default()
        }
        .encode(b)
        .unwrap()
    });
    m.insert("gs_login", gs_login.clone());
    m.insert("gs_login_result", answer(&gs_login, &welcome));
    let mut both = welcome.clone();
    both.extend_from_slice(&delivery);
    m.insert("gs_delivery", {
        let all = answer(&gs_login, &both);
        let login_result = answer(&gs_login, &welcome);
        all[login_result.len()..].to_vec()
    });

    let gl_login = delimited(&|b| {
        gamelift::Packet {
            target_player: -1,
            target_group: -1,
            reliable: true,
            payload: b"hi".to_vec(),
            command: Some(gamelift::Command::Login(gamelift::LoginCommand {
                player_session_id: "match-1".into(),
                client_version: 2,
            })),
            ..Default::default()
        }
        .encode(b)
        .unwrap()
    });
    m.insert("gl_login", gl_login.clone());
    m.insert("gl_login_result", answer(&gl_login, &welcome));
    m.insert(
        "gl_message",
        delimited(&|b| {
            gamelift::Packet {
                op_code: 10,
                target_group: -1,
                reliable: true,
                payload: b"hi".to_vec(),
                ..Default::default()
            }
            .encode(b)
            .unwrap()
        }),
    );
    m.insert("gl_delivery", {
        let mut both = welcome.clone();
        both.extend_from_slice(&server(ServerMsg::Delivery {
            intent: Intent::Reliable,
            opcode: 10,
            sender: 1,
            seq: 1,
            payload: b"hi",
        }));
        let all = answer(&gl_login, &both);
        all[answer(&gl_login, &welcome).len()..].to_vec()
    });
}
