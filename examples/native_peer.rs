//! A native (TCP) player for cross-client tests: joins a room and answers every message with
//! the same payload on opcode + 1000, to its sender. Prints `joined <peer> <session>` when in.
//! Used by the TypeScript client's tests (`clients/typescript/test/`).
//!
//! `cargo run --example native_peer -- 127.0.0.1:7777 lobby native`

use moonrt::client::{Client, Connect, Event, To};
use std::io::Write;
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:7777".into());
    let room = args.next().unwrap_or_else(|| "lobby".into());
    let name = args.next().unwrap_or_else(|| "native".into());
    let mut client = Client::connect(addr.as_str(), Connect::join_or_create(&room).name(&name))?;
    println!("joined {} {}", client.peer_id(), client.session_id());
    std::io::stdout().flush()?;
    // Bounded: a test that forgets this process does not leave it running.
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        match client.next_event(Duration::from_millis(200))? {
            Some(Event::Delivery(d)) if d.opcode < 1000 => {
                client.send(
                    To::Peers(vec![d.sender]),
                    d.opcode + 1000,
                    d.intent,
                    &d.payload,
                )?;
            }
            Some(Event::Closed { code, .. }) => {
                println!("closed {code}");
                break;
            }
            _ => {}
        }
    }
    Ok(())
}
