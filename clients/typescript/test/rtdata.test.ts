// RTData as rt.data and the Rust client write it (PROTOCOL.md section 11).

import assert from "node:assert/strict";
import { test } from "node:test";
import { RtDataError, RtFloat, RtVector, decodeRtData, encodeRtData, type RtData, type RtValue } from "../src/index.js";

test("the documented example encodes byte for byte", () => {
  const data: RtData = new Map<number, RtValue>([
    [1, 300n],
    [2, "hi"],
  ]);
  assert.deepEqual(encodeRtData(data), Uint8Array.of(0x01, 0x01, 0xd8, 0x04, 0x02, 0x04, 0x02, 0x68, 0x69));
});

test("every field type round-trips, nested and at the extremes", () => {
  const inner: RtData = new Map([[1, "nested"]]);
  const data: RtData = new Map<number, RtValue>([
    [1, -3n],
    [2, new RtFloat(1.5)],
    [3, 2.25],
    [4, "héllo"],
    [5, new RtVector(1, 2, 3)],
    [6, inner],
    [255, -(2n ** 63n)],
  ]);
  const back = decodeRtData(encodeRtData(data));
  assert.equal(back.get(1), -3n);
  assert.equal((back.get(2) as RtFloat).value, 1.5);
  assert.equal(back.get(3), 2.25);
  assert.equal(back.get(4), "héllo");
  assert.deepEqual((back.get(5) as RtVector).values, [1, 2, 3]);
  assert.equal((back.get(6) as RtData).get(1), "nested");
  assert.equal(back.get(255), -(2n ** 63n));
});

test("malformed payloads are refused with a reason", () => {
  assert.throws(() => decodeRtData(Uint8Array.of(0x02, 0x01, 0x00, 0x01, 0x01, 0x00)), RtDataError);
  assert.throws(() => decodeRtData(Uint8Array.of(0x01, 0x09)), RtDataError);
  assert.throws(() => decodeRtData(Uint8Array.of(0x01, 0x04, 0x05, 0x68)), RtDataError);
  assert.throws(() => encodeRtData(new Map([[0, 1n]])), RtDataError);
});
