// The one file that names private fields of ws, @fastify/websocket and Node.
// Each is reached through a function named for what the plugin needs, and every
// field is listed in PRIVATE_FIELDS, which test/ws-internals.test.ts checks on
// real sockets: a dependency release that renames one fails that test by name.
import type { FastifyRequest } from 'fastify'
import { ServerResponse } from 'node:http'
import { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { WebSocket } from 'ws'

interface WsPrivate {
  _socket: Duplex | null
  _sender: { _queue: unknown[], _state: number, _bufferedBytes: number }
  _receiver?: { _maxPayload: number }
  _extensions: Record<string, { _maxPayload?: number } | undefined>
  _closeFrameReceived: boolean
}

function internals (ws: WebSocket): WsPrivate {
  return ws as unknown as WsPrivate
}

/** The stream under a ws socket (a TCP socket, or app.injectWS's duplex); null once ws let go of it. */
export function socketOf (ws: WebSocket): Duplex | null {
  return internals(ws)._socket
}

/** Whether the stream under `ws` is a TCP socket (so its `bytesRead` tells liveness). */
export function isTcp (ws: WebSocket): boolean {
  return internals(ws)._socket instanceof Socket
}

/** Bytes the peer sent so far on a TCP socket; -1 on other streams. */
export function bytesRead (ws: WebSocket): number {
  const socket = internals(ws)._socket
  return socket instanceof Socket ? socket.bytesRead : -1
}

/**
 * Whether the writer may put a pre-built frame on the socket itself: ws is not
 * writing or queueing a frame of its own, and does not compress (a compressed
 * frame must be built by ws).
 */
export function canWriteFramesDirectly (ws: WebSocket): boolean {
  const w = internals(ws)
  return w._socket !== null && w._sender._state === 0 && w._sender._queue.length === 0 &&
    w._extensions['permessage-deflate'] === undefined
}

/** Count bytes the writer holds for `ws` in `ws.bufferedAmount` (negative to uncount them). */
export function countHeldBytes (ws: WebSocket, bytes: number): void {
  internals(ws)._sender._bufferedBytes += bytes
}

/** Apply a per-socket `maxPayload` (ws's receiver, and the inflater when compression is on: the inflated size). */
export function limitPayload (ws: WebSocket, maxPayload: number): void {
  const w = internals(ws)
  if (w._receiver !== undefined) w._receiver._maxPayload = maxPayload
  const deflate = w._extensions['permessage-deflate']
  if (deflate !== undefined) deflate._maxPayload = maxPayload
}

/** Whether ws is answering the peer's close frame (its own bare `close()` then is a reply, not a shutdown). */
export function answeringPeerClose (ws: WebSocket): boolean {
  return internals(ws)._closeFrameReceived
}

/** @fastify/websocket keeps the upgrade's head buffer on the raw request under this symbol's description. */
const WS_HEAD = 'ws-head'
/** Fastify keeps the request's body stream (the IncomingMessage itself, for a GET) under this symbol's description. */
const PAYLOAD_STREAM = 'fastify.RequestPayloadStream'

/** Each symbol clearSymbol found, by description: found once, then checked with one property lookup per upgrade. */
const foundSymbols = new Map<string, symbol>()

/** Set the own symbol-keyed property of `target` whose symbol has `description` to undefined (not deleted: the object keeps its shape). */
function clearSymbol (target: object, description: string): void {
  const record = target as Record<symbol, unknown>
  const known = foundSymbols.get(description)
  if (known !== undefined && Object.hasOwn(target, known)) {
    record[known] = undefined
    return
  }
  for (const key of Object.getOwnPropertySymbols(target)) {
    if (key.description !== description) continue
    foundSymbols.set(description, key)
    record[key] = undefined
  }
}

interface UpgradedSocket extends Duplex { _httpMessage?: unknown }

/**
 * Let go of what the upgrade needed and an open connection does not, so an idle
 * connection costs little heap: the ServerResponse attached to the socket, the
 * upgrade's head buffer (it keeps the whole chunk the request arrived in; read
 * once by wss.handleUpgrade, which has run) and Fastify's reference to the
 * IncomingMessage as the body stream (a GET upgrade has no body).
 */
export function releaseUpgrade (ws: WebSocket, request: FastifyRequest): void {
  const socket = internals(ws)._socket as UpgradedSocket | null
  const response = socket?._httpMessage
  if (response instanceof ServerResponse) {
    if (response.socket === socket) response.detachSocket(socket as Socket)
    // an app-registered @fastify/websocket keeps the Reply, so this response, per socket: it must not keep the message
    const withRequest = response as { req?: unknown }
    if (withRequest.req === request.raw) withRequest.req = undefined
  }
  clearSymbol(request.raw, WS_HEAD)
  clearSymbol(request, PAYLOAD_STREAM)
}

/**
 * Swap @fastify/websocket's per-socket error listener (it holds the Reply) for
 * `ours`. Theirs is the last one added (an app's 'connection' listeners ran
 * before it). Ours goes on before theirs goes, so no key is deleted from the
 * events object (a delete turns it into a dictionary: 256 bytes a connection).
 */
export function replaceRegistrationErrorListener (ws: WebSocket, ours: (this: WebSocket, err: Error) => void): void {
  const theirs = ws.listeners('error').at(-1) as ((err: Error) => void) | undefined
  ws.on('error', ours)
  if (theirs !== undefined) ws.removeListener('error', theirs)
}

/** A private field or symbol the plugin relies on, and how to tell it is still there. */
export interface PrivateField {
  name: string
  /** the socket side it lives on */
  side: 'server' | 'client' | 'request'
  /** only with permessage-deflate on */
  deflate?: boolean
  check: (ws: WebSocket, request?: FastifyRequest) => boolean
}

/** Every private field and symbol named above, for the test that opens real sockets. */
export const PRIVATE_FIELDS: readonly PrivateField[] = [
  { name: 'ws._socket', side: 'server', check: (ws) => internals(ws)._socket !== undefined && internals(ws)._socket !== null && typeof internals(ws)._socket?.write === 'function' },
  { name: 'ws._sender._queue', side: 'server', check: (ws) => Array.isArray(internals(ws)._sender?._queue) },
  { name: 'ws._sender._state', side: 'server', check: (ws) => typeof internals(ws)._sender?._state === 'number' },
  { name: 'ws._sender._bufferedBytes', side: 'server', check: (ws) => typeof internals(ws)._sender?._bufferedBytes === 'number' },
  { name: 'ws._receiver._maxPayload', side: 'server', check: (ws) => typeof internals(ws)._receiver?._maxPayload === 'number' },
  { name: 'ws._extensions', side: 'server', check: (ws) => typeof internals(ws)._extensions === 'object' && internals(ws)._extensions !== null },
  { name: "ws._extensions['permessage-deflate']._maxPayload", side: 'server', deflate: true, check: (ws) => typeof internals(ws)._extensions['permessage-deflate']?._maxPayload === 'number' },
  { name: 'ws._closeFrameReceived', side: 'server', check: (ws) => typeof internals(ws)._closeFrameReceived === 'boolean' },
  { name: 'ws._socket (client side)', side: 'client', check: (ws) => typeof internals(ws)._socket?.write === 'function' },
  { name: 'ws._sender._bufferedBytes (client side)', side: 'client', check: (ws) => typeof internals(ws)._sender?._bufferedBytes === 'number' },
  { name: 'socket._httpMessage (the upgrade ServerResponse)', side: 'server', check: (ws) => (internals(ws)._socket as UpgradedSocket | null)?._httpMessage instanceof ServerResponse },
  {
    name: "request.raw[Symbol('ws-head')] (@fastify/websocket)",
    side: 'request',
    check: (_ws, request) => request !== undefined && Object.getOwnPropertySymbols(request.raw).some((key) => key.description === WS_HEAD)
  },
  {
    name: "request[Symbol('fastify.RequestPayloadStream')] (Fastify)",
    side: 'request',
    check: (_ws, request) => request !== undefined && Object.getOwnPropertySymbols(request)
      .some((key) => key.description === PAYLOAD_STREAM && (request as unknown as Record<symbol, unknown>)[key] === request.raw)
  }
]
