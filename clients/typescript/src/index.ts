// @moonrt/client: a TypeScript client for the moonrt realtime game server.
export { connect, Client } from "./client.js";
export type { ConnectOptions, ReconnectOptions, CloseInfo, ClientEvents, WebSocketLike, WebSocketConstructor } from "./client.js";
export { Code, codeName, describeCode, MoonrtError } from "./codes.js";
export type { CodeName } from "./codes.js";
export {
  PROTOCOL_VERSION,
  ProtocolError,
  decodeServer,
  encodeData,
  encodeGroup,
  encodeHello,
  encodeLeave,
  encodePing,
  encodeProps,
  splitFrames,
} from "./protocol.js";
export type { Delivery, Intent, JoinMode, PeerInfo, ServerMessage, Target, Welcome } from "./protocol.js";
export { encodeRtData, decodeRtData, RtFloat, RtVector, RtDataError } from "./rtdata.js";
export type { RtData, RtValue } from "./rtdata.js";
