// Typed payloads (GameSparks' RTData), compatible with the session script's rt.data and the
// Rust client's RtData (PROTOCOL.md section 11).

/** A float field (f32), as `rt.data.float(x)` writes one; plain numbers are doubles. */
export class RtFloat {
  constructor(readonly value: number) {}
}

/** A vector field (1 to 4 f32 values). */
export class RtVector {
  readonly values: readonly number[];
  constructor(...values: number[]) {
    if (values.length < 1 || values.length > 4) throw new RangeError("a vector holds 1 to 4 numbers");
    this.values = values;
  }
}

/** A field value: long (bigint), double (number), float, string, vector or nested data. */
export type RtValue = bigint | number | RtFloat | string | RtVector | RtData;

/** Indexed fields, 1 to 255. */
export type RtData = Map<number, RtValue>;

/** Why a payload is not RTData. */
export class RtDataError extends Error {
  override name = "RtDataError";
}

const MAX_DEPTH = 32;
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder("utf-8", { fatal: true });

function varint(out: number[], v: bigint): void {
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
}

function encodeInto(out: number[], data: RtData, depth: number): void {
  if (depth > MAX_DEPTH) throw new RtDataError("nested deeper than 32 levels");
  const indexes = [...data.keys()].sort((a, b) => a - b);
  for (const index of indexes) {
    if (!Number.isInteger(index) || index < 1 || index > 255) {
      throw new RtDataError(`field index ${index}: must be 1 to 255`);
    }
    const value = data.get(index) as RtValue;
    out.push(index);
    if (typeof value === "bigint") {
      const v = BigInt.asIntN(64, value);
      out.push(1);
      varint(out, BigInt.asUintN(64, (v << 1n) ^ (v >> 63n)));
    } else if (typeof value === "number") {
      out.push(3);
      const b = new Uint8Array(8);
      new DataView(b.buffer).setFloat64(0, value, true);
      out.push(...b);
    } else if (value instanceof RtFloat) {
      out.push(2);
      const b = new Uint8Array(4);
      new DataView(b.buffer).setFloat32(0, value.value, true);
      out.push(...b);
    } else if (typeof value === "string") {
      const b = utf8.encode(value);
      out.push(4);
      varint(out, BigInt(b.length));
      out.push(...b);
    } else if (value instanceof RtVector) {
      out.push(5, value.values.length);
      const b = new Uint8Array(4 * value.values.length);
      value.values.forEach((x, i) => new DataView(b.buffer).setFloat32(4 * i, x, true));
      out.push(...b);
    } else {
      const inner: number[] = [];
      encodeInto(inner, value, depth + 1);
      out.push(6);
      varint(out, BigInt(inner.length));
      out.push(...inner);
    }
  }
}

/** Encodes fields in ascending index order. */
export function encodeRtData(data: RtData): Uint8Array {
  const out: number[] = [];
  encodeInto(out, data, 1);
  return Uint8Array.from(out);
}

function decodeAt(bytes: Uint8Array, depth: number): RtData {
  if (depth > MAX_DEPTH) throw new RtDataError("nested deeper than 32 levels");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const data: RtData = new Map();
  let at = 0;
  let last = 0;
  const need = (n: number) => {
    if (at + n > bytes.length) throw new RtDataError("a field is cut");
  };
  const readVarint = (): bigint => {
    let v = 0n;
    for (let shift = 0n; ; shift += 7n) {
      need(1);
      const byte = bytes[at++] as number;
      v |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return v;
      if (shift > 63n) throw new RtDataError("a varint is too long");
    }
  };
  while (at < bytes.length) {
    need(2);
    const index = bytes[at++] as number;
    const type = bytes[at++] as number;
    if (index === 0 || index <= last) throw new RtDataError(`field index ${index} is 0 or not ascending`);
    last = index;
    switch (type) {
      case 1: {
        const z = readVarint();
        data.set(index, BigInt.asIntN(64, (z >> 1n) ^ -(z & 1n)));
        break;
      }
      case 2:
        need(4);
        data.set(index, new RtFloat(view.getFloat32(at, true)));
        at += 4;
        break;
      case 3:
        need(8);
        data.set(index, view.getFloat64(at, true));
        at += 8;
        break;
      case 4: {
        const n = Number(readVarint());
        need(n);
        data.set(index, fromUtf8.decode(bytes.subarray(at, at + n)));
        at += n;
        break;
      }
      case 5: {
        need(1);
        const count = bytes[at++] as number;
        if (count < 1 || count > 4) throw new RtDataError(`a vector of ${count} numbers`);
        need(4 * count);
        const values: number[] = [];
        for (let i = 0; i < count; i++) values.push(view.getFloat32(at + 4 * i, true));
        at += 4 * count;
        data.set(index, new RtVector(...values));
        break;
      }
      case 6: {
        const n = Number(readVarint());
        need(n);
        data.set(index, decodeAt(bytes.subarray(at, at + n), depth + 1));
        at += n;
        break;
      }
      default:
        throw new RtDataError(`unknown field type ${type}`);
    }
  }
  return data;
}

/** Decodes a payload written by `rt.data.encode`, the Rust client or `encodeRtData`. */
export function decodeRtData(bytes: Uint8Array): RtData {
  return decodeAt(bytes, 1);
}
