//! The protobuf framing both vendors use: each packet is a varint length, then the packet.

use super::ProfileError;
use prost::Message;

/// Packets at most this long are taken (a vendor client's reliable limit is 4096 payload bytes).
pub(crate) const MAX_PACKET_BYTES: usize = 64 * 1024;

/// Splits a WebSocket message into its length-prefixed packets.
pub(crate) fn packets(message: &[u8]) -> Result<Vec<&[u8]>, ProfileError> {
    let mut rest = message;
    let mut out = Vec::with_capacity(1);
    while !rest.is_empty() {
        let mut cursor = rest;
        let len = prost::encoding::decode_varint(&mut cursor)
            .map_err(|e| ProfileError::malformed(format!("packet length: {e}")))?;
        let header = rest.len() - cursor.len();
        if len as usize > MAX_PACKET_BYTES {
            return Err(ProfileError::new(
                crate::core::Code::FrameTooLarge,
                format!("a packet of {len} bytes; the limit is {MAX_PACKET_BYTES}"),
            ));
        }
        let len = len as usize;
        if cursor.len() < len {
            return Err(ProfileError::malformed(format!(
                "a packet says {len} bytes but the message holds {}",
                cursor.len()
            )));
        }
        out.push(&cursor[..len]);
        rest = &rest[header + len..];
    }
    Ok(out)
}

/// Appends `msg` with its varint length prefix.
pub(crate) fn write_delimited(msg: &impl Message, out: &mut Vec<u8>) {
    msg.encode_length_delimited(out)
        .expect("a Vec grows as needed");
}
