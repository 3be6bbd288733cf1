// The moonrt wire protocol, version 1 (PROTOCOL.md): frames are a u32 little-endian length,
// a type byte and the body; strings are a u16 byte count and UTF-8.

/** The protocol version this client speaks. */
export const PROTOCOL_VERSION = 1;

/** How a message travels (PROTOCOL.md section 6). */
export type Intent = "reliable" | "unreliable" | "sequenced";

const INTENTS: readonly Intent[] = ["reliable", "unreliable", "sequenced"];

/** Who receives a message: every other player, listed peers (0 = the server), a group, or the server. */
export type Target = "all" | readonly number[] | { readonly group: number } | "server";

/** Which session to enter. */
export type JoinMode =
  | { readonly mode: "create"; readonly name: string }
  | { readonly mode: "join"; readonly sessionId: number }
  | { readonly mode: "joinOrCreate"; readonly name: string }
  | { readonly mode: "joinAny"; readonly params: Readonly<Record<string, string | number | boolean>> }
  | { readonly mode: "reconnect"; readonly sessionId: number; readonly peer: number; readonly secret: bigint };

/** A player as WELCOME and PLAYER_JOINED describe it. */
export interface PeerInfo {
  readonly peer: number;
  readonly playerId: string;
  readonly name: string;
}

/** WELCOME's fields. */
export interface Welcome {
  readonly version: number;
  readonly peer: number;
  readonly sessionId: number;
  readonly udpPort: number;
  readonly serverTimeUs: number;
  readonly idleTimeoutMs: number;
  readonly maxFrameBytes: number;
  readonly sessionName: string;
  readonly peers: readonly PeerInfo[];
  /** Takes this seat back after a drop (0n: the server holds no seats). */
  readonly reconnectSecret: bigint;
}

/** A message delivered to this client. */
export interface Delivery {
  readonly intent: Intent;
  readonly opcode: number;
  readonly sender: number;
  readonly seq: number;
  readonly payload: Uint8Array;
}

/** Every server → client message this client understands. */
export type ServerMessage =
  | { readonly type: "welcome"; readonly welcome: Welcome }
  | { readonly type: "reject"; readonly code: number; readonly message: string }
  | { readonly type: "delivery"; readonly delivery: Delivery }
  | { readonly type: "playerJoined"; readonly player: PeerInfo }
  | { readonly type: "playerLeft"; readonly peer: number; readonly reason: number }
  | { readonly type: "playerAway"; readonly peer: number }
  | { readonly type: "playerBack"; readonly peer: number }
  | { readonly type: "groupMembers"; readonly group: number; readonly members: readonly number[] }
  | { readonly type: "pong"; readonly clientTime: bigint; readonly serverTimeUs: number }
  | { readonly type: "close"; readonly code: number; readonly message: string }
  | { readonly type: "error"; readonly code: number; readonly message: string; readonly detail: number }
  | { readonly type: "udpBound" }
  | { readonly type: "playerProps"; readonly peer: number; readonly props: Uint8Array }
  | { readonly type: "sessionProps"; readonly by: number; readonly props: Uint8Array }
  | { readonly type: "unknown"; readonly kind: number };

/** A frame the server sent that this client cannot decode. */
export class ProtocolError extends Error {
  override name = "ProtocolError";
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Builds one frame; the length is filled in by `finish`. */
class FrameWriter {
  private bytes: number[] = [0, 0, 0, 0];

  constructor(type: number) {
    this.bytes.push(type);
  }

  u8(v: number): this {
    this.bytes.push(v & 0xff);
    return this;
  }

  u16(v: number): this {
    this.bytes.push(v & 0xff, (v >>> 8) & 0xff);
    return this;
  }

  u32(v: number): this {
    this.bytes.push(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff);
    return this;
  }

  u64(v: bigint): this {
    for (let i = 0n; i < 8n; i++) this.bytes.push(Number((v >> (8n * i)) & 0xffn));
    return this;
  }

  str(s: string, max = 0xffff): this {
    const b = encoder.encode(s);
    if (b.length > max) throw new RangeError(`string of ${b.length} bytes; the limit is ${max}`);
    this.u16(b.length);
    for (const x of b) this.bytes.push(x);
    return this;
  }

  rest(b: Uint8Array): this {
    for (const x of b) this.bytes.push(x);
    return this;
  }

  finish(): Uint8Array {
    const out = Uint8Array.from(this.bytes);
    new DataView(out.buffer).setUint32(0, out.length - 4, true);
    return out;
  }
}

/** Reads one frame's body. */
class FrameReader {
  private at = 0;
  private readonly view: DataView;

  constructor(private readonly body: Uint8Array) {
    this.view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  }

  private need(n: number): void {
    if (this.at + n > this.body.length) throw new ProtocolError("frame ends inside a field");
  }

  u8(): number {
    this.need(1);
    return this.view.getUint8(this.at++);
  }

  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.at, true);
    this.at += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.at, true);
    this.at += 4;
    return v;
  }

  u64(): bigint {
    this.need(8);
    const v = this.view.getBigUint64(this.at, true);
    this.at += 8;
    return v;
  }

  /** A u64 that fits a JavaScript number exactly (ids below 2^53, microsecond clocks). */
  u64n(): number {
    return Number(this.u64());
  }

  str(): string {
    const n = this.u16();
    this.need(n);
    const s = decoder.decode(this.body.subarray(this.at, this.at + n));
    this.at += n;
    return s;
  }

  /** Whether bytes are left (fields added in later versions). */
  more(): boolean {
    return this.at < this.body.length;
  }

  rest(): Uint8Array {
    const r = this.body.slice(this.at);
    this.at = this.body.length;
    return r;
  }
}

/** HELLO (0x01). */
export function encodeHello(
  join: JoinMode,
  token: string,
  playerId: string,
  name: string,
  payload: Uint8Array,
): Uint8Array {
  const w = new FrameWriter(0x01).u16(PROTOCOL_VERSION);
  switch (join.mode) {
    case "create":
      w.u8(1).u64(0n).str(join.name);
      break;
    case "join":
      w.u8(2).u64(BigInt(join.sessionId)).str("");
      break;
    case "joinOrCreate":
      w.u8(3).u64(0n).str(join.name);
      break;
    case "joinAny": {
      // Mode 5: the parameters as a URL query string (form-urlencoded; numbers as JavaScript
      // writes them, which is how the server compares them).
      const query = new URLSearchParams();
      for (const [key, value] of Object.entries(join.params)) query.append(key, String(value));
      w.u8(5).u64(0n).str(query.toString());
      break;
    }
    case "reconnect":
      w.u8(4).u64(BigInt(join.sessionId)).str("");
      return w
        .str(token)
        .str(playerId)
        .str(name)
        .u16(join.peer)
        .u64(join.secret)
        .finish();
  }
  return w.str(token).str(playerId).str(name).rest(payload).finish();
}

/** DATA (0x02). */
export function encodeData(target: Target, opcode: number, intent: Intent, payload: Uint8Array): Uint8Array {
  if (!Number.isInteger(opcode) || opcode < 1 || opcode > 0xffffffff) {
    throw new RangeError(`opcode ${opcode}: must be an integer from 1 to 4294967295`);
  }
  const w = new FrameWriter(0x02).u8(INTENTS.indexOf(intent)).u32(opcode);
  if (target === "all") {
    w.u8(0);
  } else if (target === "server") {
    w.u8(3);
  } else if ("group" in target) {
    w.u8(2).u16(target.group);
  } else {
    const peers = target as readonly number[];
    if (peers.length < 1 || peers.length > 255) {
      throw new RangeError(`a peer list holds 1 to 255 peers (got ${peers.length})`);
    }
    w.u8(1).u8(peers.length);
    for (const p of peers) w.u16(p);
  }
  return w.rest(payload).finish();
}

/** GROUP_JOIN (0x03), GROUP_LEAVE (0x04), GROUP_QUERY (0x05). */
export function encodeGroup(kind: "join" | "leave" | "query", group: number): Uint8Array {
  const type = { join: 0x03, leave: 0x04, query: 0x05 }[kind];
  return new FrameWriter(type).u16(group).finish();
}

/** PING (0x06). */
export function encodePing(clientTime: bigint): Uint8Array {
  return new FrameWriter(0x06).u64(clientTime).finish();
}

/** LEAVE (0x07). */
export function encodeLeave(): Uint8Array {
  return new FrameWriter(0x07).finish();
}

/** SET_PLAYER_PROPS (0x09) or SET_SESSION_PROPS (0x0A). */
export function encodeProps(scope: "player" | "session", props: Uint8Array): Uint8Array {
  return new FrameWriter(scope === "player" ? 0x09 : 0x0a).rest(props).finish();
}

/** Splits a buffer into frame bodies (type byte + body); frames never span WebSocket messages. */
export function splitFrames(bytes: Uint8Array): Uint8Array[] {
  const frames: Uint8Array[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  while (at < bytes.length) {
    if (at + 4 > bytes.length) throw new ProtocolError("a frame's length is cut");
    const len = view.getUint32(at, true);
    if (len === 0 || at + 4 + len > bytes.length) throw new ProtocolError(`bad frame length ${len}`);
    frames.push(bytes.subarray(at + 4, at + 4 + len));
    at += 4 + len;
  }
  return frames;
}

/** Decodes one frame body (type byte first). Unknown types come back as `unknown`, to skip. */
export function decodeServer(frame: Uint8Array): ServerMessage {
  const type = frame[0] ?? 0;
  const r = new FrameReader(frame.subarray(1));
  switch (type) {
    case 0x81: {
      const version = r.u16();
      const peer = r.u16();
      const sessionId = r.u64n();
      r.u32(); // udp_conn_id: UDP is not for browsers
      r.u64(); // udp_secret
      const udpPort = r.u16();
      const serverTimeUs = r.u64n();
      const idleTimeoutMs = r.u32();
      const maxFrameBytes = r.u32();
      const sessionName = r.str();
      const count = r.u16();
      const peers: PeerInfo[] = [];
      for (let i = 0; i < count; i++) peers.push({ peer: r.u16(), playerId: r.str(), name: r.str() });
      const reconnectSecret = r.more() ? r.u64() : 0n;
      return {
        type: "welcome",
        welcome: {
          version,
          peer,
          sessionId,
          udpPort,
          serverTimeUs,
          idleTimeoutMs,
          maxFrameBytes,
          sessionName,
          peers,
          reconnectSecret,
        },
      };
    }
    case 0x82:
      return { type: "reject", code: r.u16(), message: r.str() };
    case 0x83: {
      const intent = INTENTS[r.u8()] ?? "reliable";
      return {
        type: "delivery",
        delivery: { intent, opcode: r.u32(), sender: r.u16(), seq: r.u32(), payload: r.rest() },
      };
    }
    case 0x84:
      return { type: "playerJoined", player: { peer: r.u16(), playerId: r.str(), name: r.str() } };
    case 0x85:
      return { type: "playerLeft", peer: r.u16(), reason: r.u16() };
    case 0x8d:
      return { type: "playerAway", peer: r.u16() };
    case 0x8e:
      return { type: "playerBack", peer: r.u16() };
    case 0x86: {
      const group = r.u16();
      const count = r.u16();
      const members: number[] = [];
      for (let i = 0; i < count; i++) members.push(r.u16());
      return { type: "groupMembers", group, members };
    }
    case 0x87:
      return { type: "pong", clientTime: r.u64(), serverTimeUs: r.u64n() };
    case 0x88:
      return { type: "close", code: r.u16(), message: r.str() };
    case 0x89:
      return { type: "error", code: r.u16(), message: r.str(), detail: r.u32() };
    case 0x8a:
      return { type: "udpBound" };
    case 0x8b:
      return { type: "playerProps", peer: r.u16(), props: r.rest() };
    case 0x8c:
      return { type: "sessionProps", by: r.u16(), props: r.rest() };
    default:
      return { type: "unknown", kind: type };
  }
}
