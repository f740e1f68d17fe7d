// The wire values the client acts on. The client imports nothing from the
// server's side, so it keeps its own copies; each names the protocol code it
// mirrors (close codes and error codes of the wire protocol, room history,
// drain and kicks).

/** Close 1006: the link ended without a closing handshake (the client reports a dead link with it too). */
export const CLOSE_ABNORMAL = 1006
/** Close 1012, service restart: the server drains; its reason is `retry <ms>`. */
export const CLOSE_SERVICE_RESTART = 1012
/** Close 4401: the token expired or is invalid. */
export const CLOSE_TOKEN_INVALID = 4401
/** Close 4403: kicked by the server, for good. */
export const CLOSE_KICKED = 4403

/** Error code RATE_LIMITED: the server refused one message for the connection's rate window. */
export const RATE_LIMITED = 'RATE_LIMITED'
/** Error code NOT_IN_ROOM: a leave for a room the server does not have the connection in. */
export const NOT_IN_ROOM = 'NOT_IN_ROOM'

/** The app-level ping; the server answers `{"type":"pong"}`. */
export const PING = '{"type":"ping"}'

/** Server-to-client types with a meaning of their own; every other type is an app message. */
export const ACK = 'ack'
export const PONG = 'pong'
export const ERROR = 'error'
/** `{"type":"resync","room":..,"data":{"epoch","offset"}}`: the room's history was lost. */
export const RESYNC = 'resync'
/** `{"type":"kicked","room":..,"data":{"code"}}`: the server took the connection out of a room. */
export const KICKED = 'kicked'

/** A room's epoch is 1 to 64 characters. */
export const MAX_EPOCH_LENGTH = 64
