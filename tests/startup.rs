//! Starting up: an address already in use is reported with the listener and the config key.

use moonrt::config::Config;
use moonrt::core::NoScript;
use moonrt::net::NetServer;
use std::net::{TcpListener, UdpSocket};

fn local() -> Config {
    let mut c = Config::default();
    c.server.listen = "127.0.0.1:0".parse().unwrap();
    c.server.ws_listen = "127.0.0.1:0".into();
    c
}

fn bind_error(config: Config) -> String {
    match NetServer::bind(config, NoScript) {
        Ok(_) => panic!("bound an address that is in use"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn an_address_in_use_names_the_listener_and_its_config_key() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();

    let mut tcp = local();
    tcp.server.listen = addr;
    tcp.server.udp_enabled = false;
    let err = bind_error(tcp);
    assert!(
        err.contains("TCP listener") && err.contains("server.listen"),
        "{err}"
    );
    assert!(err.contains(&addr.to_string()), "{err}");

    let mut ws = local();
    ws.server.ws_listen = addr.to_string();
    let err = bind_error(ws);
    assert!(
        err.contains("WebSocket listener") && err.contains("server.ws_listen"),
        "{err}"
    );

    let taken_udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut udp = local();
    udp.server.udp_listen = taken_udp.local_addr().unwrap().to_string();
    let err = bind_error(udp);
    assert!(
        err.contains("UDP socket") && err.contains("server.udp_listen"),
        "{err}"
    );
}
