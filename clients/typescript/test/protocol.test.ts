// The encoder and decoder against PROTOCOL.md's worked examples, byte for byte.

import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeServer, encodeData, encodeHello, encodeLeave, encodePing, splitFrames } from "../src/index.js";

const hex = (s: string) => Uint8Array.from(s.replace(/#.*$/gm, "").trim().split(/\s+/).map((b) => parseInt(b, 16)));

test("HELLO matches PROTOCOL.md's join-or-create example", () => {
  const bytes = encodeHello({ mode: "joinOrCreate", name: "lobby" }, "", "p1", "Ann", Uint8Array.of(0xab));
  assert.deepEqual(
    bytes,
    hex(`1f 00 00 00  01   01 00   03   00 00 00 00 00 00 00 00
         05 00 6c 6f 62 62 79     00 00    02 00 70 31    03 00 41 6e 6e    ab`),
  );
  const join = encodeHello({ mode: "join", sessionId: 1 }, "t", "", "Bo", new Uint8Array());
  assert.deepEqual(join, hex(`17 00 00 00  01   01 00   02   01 00 00 00 00 00 00 00  00 00  01 00 74  00 00  02 00 42 6f`));
});

test("HELLO mode 5 matches PROTOCOL.md's join-any example", () => {
  const bytes = encodeHello({ mode: "joinAny", params: { mode: "duel" } }, "", "", "Ann", new Uint8Array());
  assert.deepEqual(
    bytes,
    hex(`20 00 00 00  01   01 00   05   00 00 00 00 00 00 00 00
         09 00 6d 6f 64 65 3d 64 75 65 6c      00 00    00 00        03 00 41 6e 6e`),
  );
});

test("DATA matches PROTOCOL.md for every target kind", () => {
  const hi = new TextEncoder().encode("hi");
  assert.deepEqual(encodeData("all", 7, "reliable", hi), hex("09 00 00 00 02 00 07 00 00 00 00 68 69"));
  assert.deepEqual(encodeData([2, 3], 7, "unreliable", hi), hex("0e 00 00 00 02 01 07 00 00 00 01 02 02 00 03 00 68 69"));
  assert.deepEqual(encodeData({ group: 5 }, 7, "sequenced", hi), hex("0b 00 00 00 02 02 07 00 00 00 02 05 00 68 69"));
  assert.deepEqual(encodeData("server", 7, "reliable", hi), hex("09 00 00 00 02 00 07 00 00 00 03 68 69"));
  assert.throws(() => encodeData("all", 0, "reliable", hi), RangeError);
  assert.throws(() => encodeData([], 7, "reliable", hi), RangeError);
  assert.deepEqual(encodePing(1000n), hex("09 00 00 00 06 e8 03 00 00 00 00 00 00"));
  assert.deepEqual(encodeLeave(), hex("01 00 00 00 07"));
});

test("WELCOME, DELIVERY and ERROR decode as PROTOCOL.md shows them", () => {
  const frames = splitFrames(
    hex(`3e 00 00 00  81   01 00   02 00  01 00 00 00 00 00 00 00
         03 00 00 00   ef cd ab 89 67 45 23 01   61 1e     00 40 1e 18 24 0a 06 00
         30 75 00 00       00 00 01 00     05 00 6c 6f 62 62 79  01 00
         01 00    02 00 70 30    02 00 42 6f
         0e 00 00 00  83   01     07 00 00 00  02 00  01 00 00 00  68 69
         0d 00 00 00  89   1f 00   04 00 6e 6f 20 39   09 00 00 00`),
  );
  assert.equal(frames.length, 3);
  const welcome = decodeServer(frames[0]!);
  assert.equal(welcome.type, "welcome");
  if (welcome.type === "welcome") {
    assert.equal(welcome.welcome.peer, 2);
    assert.equal(welcome.welcome.sessionId, 1);
    assert.equal(welcome.welcome.udpPort, 7777);
    assert.equal(welcome.welcome.idleTimeoutMs, 30000);
    assert.equal(welcome.welcome.sessionName, "lobby");
    assert.deepEqual(welcome.welcome.peers, [{ peer: 1, playerId: "p0", name: "Bo" }]);
  }
  const delivery = decodeServer(frames[1]!);
  assert.deepEqual(delivery, {
    type: "delivery",
    delivery: { intent: "unreliable", opcode: 7, sender: 2, seq: 1, payload: new TextEncoder().encode("hi") },
  });
  assert.deepEqual(decodeServer(frames[2]!), { type: "error", code: 31, message: "no 9", detail: 9 });
  assert.deepEqual(decodeServer(Uint8Array.of(0xf0, 1, 2)), { type: "unknown", kind: 0xf0 });
  assert.throws(() => decodeServer(Uint8Array.of(0x85, 1)));
});
