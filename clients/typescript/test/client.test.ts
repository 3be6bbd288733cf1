// The client against the real moonrt binary, from Node: two TypeScript players, a native Rust
// player in the same session, groups, properties, ping, refusals and closes with their codes,
// typed payloads through the session script, and reconnection after a dropped connection.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { after, before, test } from "node:test";
import { WebSocket } from "ws";
import {
  Code,
  MoonrtError,
  connect,
  decodeRtData,
  encodeRtData,
  type Client,
  type ConnectOptions,
  type RtData,
  type WebSocketConstructor,
} from "../src/index.js";
import { binary, startServer, type RunningServer } from "./server.js";

const SCRIPT = `
return {
  on_packet = function(packet)
    if packet.opcode == 50 then
      local d = rt.data.decode(packet.payload)
      d[2] = d[1] * 2
      rt.send(packet.sender, 51, rt.data.encode(d))
      return false
    elseif packet.opcode == 99 then
      rt.kick(packet.sender, "asked for it")
      return false
    end
  end,
}
`;

let server: RunningServer;
const text = new TextDecoder();
const clients: Client[] = [];

function open(opts: Omit<ConnectOptions, "url" | "WebSocket">): Promise<Client> {
  return connect({ url: server.url, WebSocket: WebSocket as unknown as WebSocketConstructor, ...opts }).then((c) => {
    clients.push(c);
    return c;
  });
}

before(async () => {
  server = await startServer(SCRIPT);
});

after(async () => {
  for (const c of clients) if (!c.closed) c.disconnect();
  await server.stop();
});

test("two players join a room and message each other, by all, peers and group", async () => {
  const ann = await open({ room: "arena", name: "Ann", playerId: "u1" });
  const joined = ann.next("playerJoined");
  const bo = await open({ room: "arena", name: "Bo" });
  assert.equal(bo.sessionId, ann.sessionId);
  assert.deepEqual([...bo.players.values()], [{ peer: ann.peer, playerId: "u1", name: "Ann" }]);
  assert.equal((await joined)[0].name, "Bo");

  let got = bo.next("delivery");
  ann.send("all", 7, "hello everyone");
  let [d] = await got;
  assert.deepEqual([d.opcode, d.sender, text.decode(d.payload), d.intent], [7, ann.peer, "hello everyone", "reliable"]);

  got = bo.next("delivery");
  ann.send([bo.peer], 8, Uint8Array.of(1, 2, 3), "sequenced");
  [d] = await got;
  assert.deepEqual([d.opcode, [...d.payload], d.intent], [8, [1, 2, 3], "sequenced"]);

  const members = ann.next("groupMembers", 5000, (_g, m) => m.length === 2);
  ann.joinGroup(5);
  bo.joinGroup(5);
  assert.deepEqual((await members)[1], [ann.peer, bo.peer]);
  got = ann.next("delivery");
  bo.send({ group: 5 }, 9, "to the group");
  [d] = await got;
  assert.equal(text.decode(d.payload), "to the group");

  const props = ann.next("playerProps");
  bo.setPlayerProps("ready");
  const [peer, value] = await props;
  assert.deepEqual([peer, text.decode(value)], [bo.peer, "ready"]);

  const rtt = await ann.ping();
  assert.ok(rtt >= 0 && rtt < 2000, `rtt ${rtt}`);

  const error = ann.next("error");
  ann.send([999], 7, "nobody");
  const [err, detail] = await error;
  assert.deepEqual([err.code, err.codeName, detail], [Code.UnknownPeer, "UnknownPeer", 999]);

  const left = ann.next("playerLeft");
  const closed = await bo.leave();
  assert.equal(closed.code, Code.ClientLeft);
  assert.deepEqual(await left, [bo.peer, Code.ClientLeft]);
});

test("a native Rust client in the same session answers a TypeScript client", async () => {
  const ts = await open({ room: "mixed", name: "ts" });
  const native = spawn(binary("native_peer"), [server.tcp, "mixed", "rusty"], { stdio: ["ignore", "pipe", "inherit"] });
  const lines = createInterface({ input: native.stdout! });
  try {
    const [joined] = await ts.next("playerJoined", 20000);
    assert.equal(joined.name, "rusty");
    const reply = ts.next("delivery", 5000, (d) => d.opcode === 1005);
    ts.send([joined.peer], 5, "from typescript");
    const [d] = await reply;
    assert.deepEqual([d.sender, text.decode(d.payload)], [joined.peer, "from typescript"]);
  } finally {
    native.kill();
    lines.close();
  }
});

test("typed payloads reach the session script's rt.data and come back", async () => {
  const c = await open({ room: "rtdata" });
  const reply = c.next("delivery", 5000, (d) => d.opcode === 51);
  c.send("server", 50, encodeRtData(new Map([[1, 21n]])));
  const [d] = await reply;
  const back: RtData = decodeRtData(d.payload);
  assert.equal(back.get(1), 21n);
  assert.equal(back.get(2), 42n);
  assert.equal(d.sender, 0);
});

test("joinAny fills a listed session before it creates another", async () => {
  const a = await open({ joinAny: { mode: "duel", map: 4 }, name: "A" });
  const b = await open({ joinAny: { mode: "duel", map: 4 }, name: "B" });
  const c = await open({ joinAny: { mode: "ffa" }, name: "C" });
  assert.equal(b.sessionId, a.sessionId);
  assert.notEqual(c.sessionId, a.sessionId);
  assert.equal(b.players.size, 1, "b sees a already in the session");
  a.disconnect();
  b.disconnect();
  c.disconnect();
});

test("refusals and closes carry their codes", async () => {
  await open({ create: "only-one" });
  await assert.rejects(open({ create: "only-one" }), (e: unknown) => {
    assert.ok(e instanceof MoonrtError);
    assert.equal(e.code, Code.SessionNameTaken);
    assert.equal(e.codeName, "SessionNameTaken");
    assert.match(e.message, /only-one/);
    return true;
  });
  await assert.rejects(open({ sessionId: 12345 }), (e: unknown) => e instanceof MoonrtError && e.code === Code.SessionNotFound);
  const kicked = await open({ room: "kick" });
  const closed = kicked.next("close");
  kicked.send("server", 99);
  const [info] = await closed;
  assert.deepEqual([info.code, info.message, info.willReconnect], [Code.Kicked, "asked for it", false]);
  assert.throws(() => kicked.send("all", 1), MoonrtError);
});

test("with a held seat, a dropped client takes it back: same peer id, missed messages replayed", async () => {
  const held = await startServer(undefined, "", 5000);
  const make = (opts: Omit<ConnectOptions, "url" | "WebSocket">) =>
    connect({ url: held.url, WebSocket: WebSocket as unknown as WebSocketConstructor, ...opts });
  try {
    const stay = await make({ room: "seat", name: "stay" });
    const roamer = await make({ room: "seat", name: "roamer", reconnect: { attempts: 5, delayMs: 200 } });
    const away = stay.next("playerAway");
    const backNote = stay.next("playerBack", 10000);
    (roamer as unknown as { ws: { terminate(): void } }).ws.terminate();
    assert.equal((await away)[0], roamer.peer);
    const oldPeer = roamer.peer;
    stay.send([oldPeer], 21, "while you were away");
    const back = roamer.next("reconnected", 10000);
    const missed = roamer.next("delivery", 10000);
    const [welcome] = await back;
    assert.equal(welcome.peer, oldPeer);
    const [d] = await missed;
    assert.deepEqual([d.opcode, text.decode(d.payload)], [21, "while you were away"]);
    const [backPeer] = await backNote;
    assert.equal(backPeer, oldPeer);
    stay.disconnect();
    roamer.disconnect();
  } finally {
    await held.stop();
  }
});

test("after a dropped connection the client rejoins its session by itself", async () => {
  const stay = await open({ room: "flaky", name: "stay" });
  const roamer = await open({ room: "flaky", name: "roamer", reconnect: { attempts: 5, delayMs: 100 } });
  const lost = stay.next("playerLeft");
  const closed = roamer.next("close");
  const back = roamer.next("reconnected", 10000);
  // The network drops: the socket dies without a close frame.
  (roamer as unknown as { ws: { terminate(): void } }).ws.terminate();
  assert.equal((await closed)[0].willReconnect, true);
  assert.equal((await lost)[1], Code.ConnectionLost);
  const [welcome] = await back;
  assert.equal(welcome.sessionId, stay.sessionId);
  const got = stay.next("delivery");
  roamer.send("all", 3, "back again");
  assert.equal(text.decode((await got)[0].payload), "back again");
});
