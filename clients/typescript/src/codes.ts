// One code table for REJECT, CLOSE, ERROR and PLAYER_LEFT (PROTOCOL.md section 8).

/** Every code this version knows, by name. */
export const Code = {
  Malformed: 1,
  FrameTooLarge: 2,
  UnknownMessageType: 3,
  UnsupportedVersion: 4,
  HandshakeTimeout: 5,
  UnexpectedMessage: 6,
  BadHello: 7,
  ReconnectRefused: 8,
  SessionClosed: 9,
  ServerFull: 10,
  TooManySessions: 11,
  SessionFull: 12,
  SessionNotFound: 13,
  SessionNameTaken: 14,
  RejectedByScript: 15,
  InvalidToken: 16,
  InvalidTicket: 17,
  TicketExpired: 18,
  TicketWrongSession: 19,
  IdleTimeout: 20,
  OutputOverflow: 21,
  ShuttingDown: 22,
  SessionEnded: 23,
  Kicked: 24,
  ClientLeft: 25,
  ConnectionLost: 26,
  Replaced: 27,
  RateLimited: 28,
  ScriptFailed: 29,
  InvalidOpcode: 30,
  UnknownPeer: 31,
  InvalidGroup: 32,
  GroupRefused: 33,
  PropsRefused: 34,
  PropsTooLarge: 35,
  NoTargets: 36,
  FrameSyncRefused: 37,
  NotInFrameSync: 38,
} as const;

/** A code's name. */
export type CodeName = keyof typeof Code;

const DESCRIPTIONS: Record<number, string> = {
  1: "a frame could not be decoded",
  2: "a frame was larger than the server accepts",
  3: "a message type the server does not know",
  4: "the server does not speak this protocol version",
  5: "no HELLO in time",
  6: "a message that is not allowed now",
  7: "a HELLO field is out of range",
  8: "no seat is held for this player any more",
  9: "the session takes no new players",
  10: "the server is full",
  11: "the server holds as many sessions as it may",
  12: "the session is full",
  13: "no session with that id",
  14: "a session with that name exists",
  15: "the session's script refused the player",
  16: "the access token does not match",
  17: "the join ticket is not valid",
  18: "the join ticket has expired",
  19: "the join ticket is for another session",
  20: "nothing was received for too long",
  21: "the client read too slowly",
  22: "the server is stopping or draining",
  23: "the session ended",
  24: "removed by the server",
  25: "the client left",
  26: "the connection was lost",
  27: "the same player connected again",
  28: "too many messages per second",
  29: "the session's script failed",
  30: "opcode 0 is reserved",
  31: "a listed peer is not in the session",
  32: "group 0 is reserved",
  33: "the session's script refused the group change",
  34: "the session's script refused the properties",
  35: "properties over 4096 bytes",
  36: "a list of 0 peers",
  37: "frame sync was refused",
  38: "frame sync is not running",
};

/** The name of a code (`"SessionFull"`), or `"Unknown"` for a code from a newer server. */
export function codeName(code: number): CodeName | "Unknown" {
  const entry = Object.entries(Code).find(([, v]) => v === code);
  return (entry?.[0] as CodeName | undefined) ?? "Unknown";
}

/** What a code means, in a few words. */
export function describeCode(code: number): string {
  return DESCRIPTIONS[code] ?? `code ${code}`;
}

/** A refusal or a close with its code: `connect` rejects with one, `close` events carry one. */
export class MoonrtError extends Error {
  override name = "MoonrtError";
  /** The code's name, e.g. `"SessionFull"`. */
  readonly codeName: CodeName | "Unknown";

  constructor(
    /** The code from PROTOCOL.md section 8. */
    readonly code: number,
    /** The server's message (for logs; do not parse it). */
    readonly serverMessage: string,
  ) {
    super(`${codeName(code)} (${code}): ${describeCode(code)}${serverMessage ? `: ${serverMessage}` : ""}`);
    this.codeName = codeName(code);
  }
}
