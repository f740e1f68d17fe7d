import { createHmac } from 'node:crypto'

/** Shared by the plugin's server and the load generator; bench only. */
export const SECRET = 'bench-only-secret-0123456789abcdef'

/** The path of the WebSocket route on every ws-based server. */
export const WS_PATH = '/bench'

/** Incoming messages are capped at this size on every server. */
export const MAX_PAYLOAD = 65_536

/**
 * Padding that makes a delivered fan-out envelope about 100 bytes:
 * {"type":"message","room":"fanout","data":{"seq":123,"ts":1234567890,"pad":"..."}}
 */
export const PAD = 'x'.repeat(22)

/** The data every server relays: a sequence number, a send timestamp (integer µs) and padding. */
export function messageData (seq, tsMicros) {
  return { seq, ts: tsMicros, pad: PAD }
}

function base64url (value) {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')
}

/** An HS256 JWT for `sub`, verifiable by @fastify/jwt with SECRET. */
export function signToken (sub) {
  const head = base64url({ alg: 'HS256', typ: 'JWT' })
  const body = base64url({ sub, iat: Math.floor(Date.now() / 1000) })
  const signature = createHmac('sha256', SECRET).update(`${head}.${body}`).digest('base64url')
  return `${head}.${body}.${signature}`
}
