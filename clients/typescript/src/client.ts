// A moonrt client over WebSocket (PROTOCOL.md section 12), for browsers and Node.

import { MoonrtError, Code } from "./codes.js";
import {
  type Delivery,
  type Intent,
  type JoinMode,
  type PeerInfo,
  type ServerMessage,
  type Target,
  type Welcome,
  decodeServer,
  encodeData,
  encodeGroup,
  encodeHello,
  encodeLeave,
  encodePing,
  encodeProps,
  splitFrames,
} from "./protocol.js";

/** The part of the WebSocket API this client uses: the browser's, or the `ws` package's. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket constructor (`globalThis.WebSocket`, or `ws`'s `WebSocket` in Node). */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** How to reconnect after the connection drops. */
export interface ReconnectOptions {
  /** Attempts before giving up (default 5). */
  readonly attempts?: number;
  /** Delay before the first attempt, doubled after each (default 250 ms). */
  readonly delayMs?: number;
}

/** Everything `connect` needs. Give exactly one of `room`, `create`, `sessionId` or `joinAny`. */
export interface ConnectOptions {
  /** The server's WebSocket URL, e.g. `ws://127.0.0.1:7778/` or `wss://game.example.com:7780/`. */
  readonly url: string;
  /** Join the session with this name, creating it if needed. */
  readonly room?: string;
  /** Create a new session; a string gives it a unique name. */
  readonly create?: boolean | string;
  /** Join the session with this id. */
  readonly sessionId?: number;
  /**
   * Join any listed session with a free seat whose parameters match these, else create one
   * (HELLO mode 5; `{}` matches every listed session).
   */
  readonly joinAny?: Readonly<Record<string, string | number | boolean>>;
  /** The access token or join ticket (README "Security"). */
  readonly token?: string;
  /** The game's id for the player (with tickets: empty, or the ticket's player). */
  readonly playerId?: string;
  /** Display name. */
  readonly name?: string;
  /** Bytes for the session script's `on_player_connect`. */
  readonly payload?: Uint8Array | string;
  /** Milliseconds to wait for WELCOME (default 5000). */
  readonly timeoutMs?: number;
  /** The WebSocket implementation; defaults to `globalThis.WebSocket` (browsers, Node 22+). */
  readonly WebSocket?: WebSocketConstructor;
  /** Rejoin the same session when the connection drops (not when the server closes it). */
  readonly reconnect?: boolean | ReconnectOptions;
  /** Send PING when idle so the server does not close the connection (default true). */
  readonly keepalive?: boolean;
}

/** Why the connection ended: the server's code (PROTOCOL.md section 8) and message. */
export interface CloseInfo {
  readonly code: number;
  readonly message: string;
  /** Whether the client will try to reconnect. */
  readonly willReconnect: boolean;
}

/** The events a client emits, with their arguments. */
export interface ClientEvents {
  /** A message from a player or the server (peer 0). */
  delivery: [Delivery];
  /** A player joined the session. */
  playerJoined: [PeerInfo];
  /** A player left, with the code of why (25 left, 26 lost, 20 idle, ...). */
  playerLeft: [peer: number, reason: number];
  /** A player's connection dropped; the server holds its seat. */
  playerAway: [peer: number];
  /** A player whose seat was held is back (same peer id). */
  playerBack: [peer: number];
  /** A group's members changed (or a query's answer). */
  groupMembers: [group: number, members: readonly number[]];
  /** A player's custom properties changed. */
  playerProps: [peer: number, props: Uint8Array];
  /** The session's custom properties changed (`by` 0: the script). */
  sessionProps: [by: number, props: Uint8Array];
  /** Something this client sent was refused; the connection stays. */
  error: [MoonrtError, number];
  /** The connection ended. */
  close: [CloseInfo];
  /** The connection dropped and a new one is being made (attempt number). */
  reconnecting: [number];
  /** Back in the session after a reconnect (the peer id may have changed). */
  reconnected: [Welcome];
}

type Listener<K extends keyof ClientEvents> = (...args: ClientEvents[K]) => void;

const OPEN = 1;
const utf8 = new TextEncoder();

function bytesOf(payload: Uint8Array | string | undefined): Uint8Array {
  if (payload === undefined) return new Uint8Array();
  return typeof payload === "string" ? utf8.encode(payload) : payload;
}

function joinOf(opts: ConnectOptions): JoinMode {
  const given = [
    opts.room !== undefined,
    opts.create !== undefined && opts.create !== false,
    opts.sessionId !== undefined,
    opts.joinAny !== undefined,
  ];
  if (given.filter(Boolean).length !== 1) {
    throw new TypeError("give exactly one of room, create, sessionId or joinAny");
  }
  if (opts.room !== undefined) return { mode: "joinOrCreate", name: opts.room };
  if (opts.joinAny !== undefined) return { mode: "joinAny", params: opts.joinAny };
  if (opts.sessionId !== undefined) return { mode: "join", sessionId: opts.sessionId };
  return { mode: "create", name: typeof opts.create === "string" ? opts.create : "" };
}

/** Opens a WebSocket, sends HELLO, and resolves with the WELCOME; rejects with the REJECT. */
function handshake(
  opts: ConnectOptions,
  join: JoinMode,
  onFrame: (msg: ServerMessage) => void,
  onClose: (code: number, reason: string) => void,
): Promise<{ ws: WebSocketLike; welcome: Welcome }> {
  const Ctor = opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (!Ctor) {
    return Promise.reject(
      new TypeError("no WebSocket here: in Node before 22, pass { WebSocket } from the 'ws' package"),
    );
  }
  return new Promise((resolve, reject) => {
    const ws = new Ctor(opts.url);
    ws.binaryType = "arraybuffer";
    let welcomed = false;
    const timer = setTimeout(() => {
      if (!welcomed) {
        ws.close();
        reject(new MoonrtError(Code.HandshakeTimeout, `no WELCOME within ${opts.timeoutMs ?? 5000} ms`));
      }
    }, opts.timeoutMs ?? 5000);
    ws.onopen = () => {
      ws.send(encodeHello(join, opts.token ?? "", opts.playerId ?? "", opts.name ?? "", bytesOf(opts.payload)));
    };
    ws.onerror = () => {};
    ws.onmessage = (ev) => {
      const data = ev.data;
      if (!(data instanceof ArrayBuffer)) return;
      for (const frame of splitFrames(new Uint8Array(data))) {
        const msg = decodeServer(frame);
        if (!welcomed) {
          if (msg.type === "welcome") {
            welcomed = true;
            clearTimeout(timer);
            resolve({ ws, welcome: msg.welcome });
          } else if (msg.type === "reject") {
            clearTimeout(timer);
            reject(new MoonrtError(msg.code, msg.message));
          }
          continue;
        }
        onFrame(msg);
      }
    };
    ws.onclose = (ev) => {
      clearTimeout(timer);
      if (!welcomed) {
        // A close status of 4000 + code repeats the REJECT (PROTOCOL.md section 12).
        const code = ev.code >= 4000 && ev.code < 5000 ? ev.code - 4000 : Code.ConnectionLost;
        reject(new MoonrtError(code, ev.reason || "the connection closed before WELCOME"));
      } else {
        onClose(ev.code, ev.reason);
      }
    };
  });
}

/** A player in a moonrt session. Create one with {@link connect}. */
export class Client {
  /** This player's peer id in the session. */
  peer: number;
  /** The session's id (join it with `sessionId`). */
  sessionId: number;
  /** The session's name ("" if unnamed). */
  sessionName: string;
  /** The other players, by peer id. */
  readonly players = new Map<number, PeerInfo>();
  /** Whether the connection has ended for good. */
  closed = false;

  private ws: WebSocketLike;
  private idleTimeoutMs: number;
  private readonly listeners = new Map<keyof ClientEvents, Set<(...args: unknown[]) => void>>();
  private readonly lastSequenced = new Map<number, number>();
  private readonly pings = new Map<bigint, { sent: number; resolve: (rtt: number) => void }>();
  private pingCounter = 0n;
  private lastSent = Date.now();
  private keepaliveTimer: ReturnType<typeof setInterval> | undefined;
  private closeNote: { code: number; message: string } | undefined;
  private reconnectSecret: bigint;
  private leaving = false;
  /** Messages that came with or right after WELCOME, held until the caller of `connect` has
   * had its turn to add listeners (then dispatched in order). */
  private held: ServerMessage[] | null = [];

  /** @internal */
  constructor(
    private readonly opts: ConnectOptions,
    ws: WebSocketLike,
    welcome: Welcome,
  ) {
    this.ws = ws;
    this.peer = welcome.peer;
    this.sessionId = welcome.sessionId;
    this.sessionName = welcome.sessionName;
    this.idleTimeoutMs = welcome.idleTimeoutMs;
    this.reconnectSecret = welcome.reconnectSecret;
    for (const p of welcome.peers) this.players.set(p.peer, p);
    this.startKeepalive();
  }

  /** Listens to an event. Returns a function that stops listening. */
  on<K extends keyof ClientEvents>(event: K, listener: Listener<K>): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    const stored = listener as unknown as (...args: unknown[]) => void;
    set.add(stored);
    return () => set.delete(stored);
  }

  /** Waits for the next event of a kind (optionally one that `accept` takes). */
  next<K extends keyof ClientEvents>(
    event: K,
    timeoutMs = 5000,
    accept: (...args: ClientEvents[K]) => boolean = () => true,
  ): Promise<ClientEvents[K]> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`no ${String(event)} event within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.on(event, ((...args: ClientEvents[K]) => {
        if (!accept(...args)) return;
        clearTimeout(timer);
        off();
        resolve(args);
      }) as Listener<K>);
    });
  }

  private emit<K extends keyof ClientEvents>(event: K, ...args: ClientEvents[K]): void {
    for (const listener of [...(this.listeners.get(event) ?? [])]) {
      (listener as unknown as Listener<K>)(...args);
    }
  }

  /**
   * Sends a message: to `"all"` other players, a list of peers (0 = the server), `{ group }`,
   * or `"server"`. Over WebSocket every intent travels on the one connection; "sequenced"
   * receivers still drop stale ones.
   */
  send(to: Target, opcode: number, payload: Uint8Array | string = new Uint8Array(), intent: Intent = "reliable"): void {
    this.write(encodeData(to, opcode, intent, bytesOf(payload)));
  }

  /** Asks to join a group; the members come in a `groupMembers` event. */
  joinGroup(group: number): void {
    this.write(encodeGroup("join", group));
  }

  /** Asks to leave a group. */
  leaveGroup(group: number): void {
    this.write(encodeGroup("leave", group));
  }

  /** Asks for a group's members (answered with a `groupMembers` event). */
  queryGroup(group: number): void {
    this.write(encodeGroup("query", group));
  }

  /** Sets this player's custom properties (everyone gets a `playerProps` event). */
  setPlayerProps(props: Uint8Array | string): void {
    this.write(encodeProps("player", bytesOf(props)));
  }

  /** Sets the session's custom properties (everyone gets a `sessionProps` event). */
  setSessionProps(props: Uint8Array | string): void {
    this.write(encodeProps("session", bytesOf(props)));
  }

  /** Measures the round trip to the server, in milliseconds. */
  ping(): Promise<number> {
    const id = ++this.pingCounter;
    return new Promise((resolve) => {
      this.pings.set(id, { sent: Date.now(), resolve });
      this.write(encodePing(id));
    });
  }

  /** Leaves the session; resolves once the server has closed the connection. */
  leave(): Promise<CloseInfo> {
    this.leaving = true;
    if (this.closed) return Promise.resolve({ code: Code.ClientLeft, message: "left", willReconnect: false });
    const closed = this.next("close", 5000).then(([info]) => info);
    this.write(encodeLeave());
    return closed;
  }

  private write(frame: Uint8Array): void {
    if (this.closed || this.ws.readyState !== OPEN) {
      throw new MoonrtError(Code.ConnectionLost, "the connection is closed");
    }
    this.ws.send(frame);
    this.lastSent = Date.now();
  }

  private startKeepalive(): void {
    if (this.opts.keepalive === false) return;
    const every = Math.max(250, Math.floor(this.idleTimeoutMs / 3));
    clearInterval(this.keepaliveTimer);
    this.keepaliveTimer = setInterval(() => {
      if (!this.closed && this.ws.readyState === OPEN && Date.now() - this.lastSent >= every) {
        this.write(encodePing(0n));
      }
    }, Math.min(every, 1000));
    // Node: a keepalive alone must not keep the process running.
    (this.keepaliveTimer as { unref?: () => void }).unref?.();
  }

  /** @internal: dispatches the messages held since WELCOME, on the next task. */
  releaseHeld(): void {
    setTimeout(() => {
      const held = this.held ?? [];
      this.held = null;
      for (const msg of held) this.dispatch(msg);
    }, 0);
  }

  /** @internal: one message from the server after WELCOME. */
  handle(msg: ServerMessage): void {
    if (this.held) this.held.push(msg);
    else this.dispatch(msg);
  }

  private dispatch(msg: ServerMessage): void {
    switch (msg.type) {
      case "delivery": {
        const d = msg.delivery;
        if (d.intent === "sequenced") {
          const last = this.lastSequenced.get(d.sender);
          if (last !== undefined && ((d.seq - last) | 0) <= 0) return;
          this.lastSequenced.set(d.sender, d.seq);
        }
        this.emit("delivery", d);
        break;
      }
      case "playerJoined":
        this.players.set(msg.player.peer, msg.player);
        this.emit("playerJoined", msg.player);
        break;
      case "playerAway":
        this.emit("playerAway", msg.peer);
        break;
      case "playerBack":
        this.emit("playerBack", msg.peer);
        break;
      case "playerLeft":
        this.players.delete(msg.peer);
        this.lastSequenced.delete(msg.peer);
        this.emit("playerLeft", msg.peer, msg.reason);
        break;
      case "groupMembers":
        this.emit("groupMembers", msg.group, msg.members);
        break;
      case "playerProps":
        this.emit("playerProps", msg.peer, msg.props);
        break;
      case "sessionProps":
        this.emit("sessionProps", msg.by, msg.props);
        break;
      case "pong": {
        const waiting = this.pings.get(msg.clientTime);
        if (waiting) {
          this.pings.delete(msg.clientTime);
          waiting.resolve(Date.now() - waiting.sent);
        }
        break;
      }
      case "error":
        this.emit("error", new MoonrtError(msg.code, msg.message), msg.detail);
        break;
      case "close":
        this.closeNote = { code: msg.code, message: msg.message };
        break;
      default:
        break;
    }
  }

  /** @internal: the WebSocket closed. */
  async closedBy(status: number, reason: string): Promise<void> {
    clearInterval(this.keepaliveTimer);
    // Whatever came before the close (a CLOSE frame with its code, say) is seen first.
    const held = this.held ?? [];
    this.held = null;
    for (const msg of held) this.dispatch(msg);
    const note =
      this.closeNote ??
      (status >= 4000 && status < 5000
        ? { code: status - 4000, message: reason }
        : { code: Code.ConnectionLost, message: reason || "connection lost" });
    this.closeNote = undefined;
    const wanted = this.opts.reconnect;
    // Only a dropped connection is retried; a server that closed us (kick, end, idle) meant it.
    const retry = !!wanted && !this.leaving && note.code === Code.ConnectionLost;
    this.emit("close", { code: note.code, message: note.message, willReconnect: retry });
    if (!retry) {
      this.closed = true;
      return;
    }
    const { attempts = 5, delayMs = 250 } = typeof wanted === "object" ? wanted : {};
    // What comes with the new WELCOME (the replayed messages) follows the `reconnected` event.
    this.held = [];
    for (let attempt = 1; attempt <= attempts; attempt++) {
      this.emit("reconnecting", attempt);
      await new Promise((r) => setTimeout(r, delayMs * 2 ** (attempt - 1)));
      try {
        // With a held seat: take it back (same peer id, the missed messages follow); without
        // one, join the session again as a new peer.
        const join: JoinMode =
          this.reconnectSecret !== 0n
            ? { mode: "reconnect", sessionId: this.sessionId, peer: this.peer, secret: this.reconnectSecret }
            : { mode: "join", sessionId: this.sessionId };
        const { ws, welcome } = await handshake(
          this.opts,
          join,
          (m) => this.handle(m),
          (s, r) => void this.closedBy(s, r),
        );
        this.ws = ws;
        this.peer = welcome.peer;
        this.idleTimeoutMs = welcome.idleTimeoutMs;
        this.reconnectSecret = welcome.reconnectSecret;
        this.players.clear();
        for (const p of welcome.peers) this.players.set(p.peer, p);
        this.startKeepalive();
        this.emit("reconnected", welcome);
        this.releaseHeld();
        return;
      } catch (e) {
        // A refusal (the session ended, the seat was given up) will not change by retrying.
        if (e instanceof MoonrtError && e.code !== Code.ConnectionLost && e.code !== Code.HandshakeTimeout) {
          this.closed = true;
          this.held = null;
          this.emit("close", { code: e.code, message: e.serverMessage, willReconnect: false });
          return;
        }
      }
    }
    this.closed = true;
    this.held = null;
    this.emit("close", { code: Code.ConnectionLost, message: "could not reconnect", willReconnect: false });
  }

  /** Closes the connection without LEAVE (the others see PLAYER_LEFT 26). */
  disconnect(): void {
    this.leaving = true;
    clearInterval(this.keepaliveTimer);
    this.ws.close();
  }
}

/**
 * Connects and joins a session. Resolves once the server has sent WELCOME; rejects with a
 * {@link MoonrtError} carrying the REJECT's code (e.g. `SessionFull`, `InvalidTicket`).
 */
export async function connect(opts: ConnectOptions): Promise<Client> {
  const join = joinOf(opts);
  let client: Client | undefined;
  const early: ServerMessage[] = [];
  const { ws, welcome } = await handshake(
    opts,
    join,
    (msg) => (client ? client.handle(msg) : early.push(msg)),
    (status, reason) => void client?.closedBy(status, reason),
  );
  client = new Client(opts, ws, welcome);
  for (const msg of early) client.handle(msg);
  client.releaseHeld();
  return client;
}
