import { verifyToken, armExpiry } from './auth.js'
import type { FastifyRequest } from 'fastify'
import type { ConnectionHost, RealtimeConnection } from './connection.js'
import type { CompiledMessage } from './context.js'
import { invokeHandler } from './diagnostics.js'
import { PONG, isValidRoom, joinDataCheck, parseEnvelope, schemaErrors, serializeAck, type Detail } from './envelope.js'
import { RealtimeError } from './errors.js'
import type { JoinHandle, JoinRequest } from './history/feed.js'
import { ackError } from './outgoing.js'
import { CloseCode, ErrorCode, KickCode, type IncomingEnvelope, type Member } from './protocol.js'
import { isIn, roomCount } from './rooms.js'

type Id = string | number | undefined

/** Most members a join ack lists; `total` says how many there are. */
export const MAX_ACK_MEMBERS = 1000

/**
 * Handle one incoming text frame. Returns a promise only when the work went
 * async (a handler, canJoin or adapter), so the connection can hold later
 * messages until it settles; everything synchronous stays synchronous.
 * It never throws: it runs inside the socket's 'message' listener.
 */
export function dispatchMessage (conn: RealtimeConnection, host: ConnectionHost, text: string): Promise<void> | undefined {
  const parsed = parseEnvelope(text)
  host.metrics?.received(conn.route, parsed.ok ? parsed.envelope.type : undefined)
  if (!parsed.ok) {
    host.sendError(conn, parsed.code, parsed.id)
    return undefined
  }
  const msg = parsed.envelope
  try {
    switch (msg.type) {
      case 'ping':
        conn.sendPayload(PONG)
        return undefined
      case 'join':
        return join(conn, host, msg)
      case 'leave':
        return leave(conn, host, msg)
      case 'auth':
        return refreshToken(conn, host, msg)
      default:
        return runHandler(conn, host, msg)
    }
  } catch (err) {
    // a bug or a misbehaving adapter must not become an uncaught exception
    return handlerFailed(conn, host, msg.id, err)
  }
}

function validRoom (conn: RealtimeConnection, host: ConnectionHost, room: unknown, id: Id): room is string {
  if (isValidRoom(room)) return true
  host.sendError(conn, ErrorCode.INVALID_ROOM, id)
  return false
}

function ackRoom (conn: RealtimeConnection, id: Id, data: unknown): void {
  if (id !== undefined) conn.sendPayload(serializeAck(id, data))
}

function capped (members: Member[]): { members: Member[], total: number } {
  return { members: members.length > MAX_ACK_MEMBERS ? members.slice(0, MAX_ACK_MEMBERS) : members, total: members.length }
}

/**
 * The join ack: `{ room }`, plus `offset`, `epoch` (and `recovered`) in a room
 * with history, plus the members on every instance (at most 1000, and `total`)
 * when the route has presence. In a room with history, live messages flow once
 * the ack is written (`handle.release()`), so none comes between replay and ack.
 */
function ackJoin (conn: RealtimeConnection, host: ConnectionHost, room: string, id: Id, handle: JoinHandle | undefined): Promise<void> | undefined {
  if (id === undefined) {
    handle?.release()
    return undefined
  }
  const data = handle === undefined ? { room } : { room, ...handle.ack }
  if (!conn.route.presence) {
    ackRoom(conn, id, data)
    handle?.release()
    return undefined
  }
  return host.members(room).then(
    (members) => ackRoom(conn, id, { ...data, ...capped(members) }),
    (err: unknown) => {
      // the adapter cannot say who is elsewhere; answer with who is here
      host.log.warn({ err, room }, 'fastify-realtime: members() failed; join ack lists local members')
      ackRoom(conn, id, { ...data, ...capped(host.localMembers(room)) })
    }).finally(() => { handle?.release() })
}

/** Join after the room's history (if any) was read: ack, then live delivery. */
function joined (conn: RealtimeConnection, host: ConnectionHost, room: string, id: Id, result: JoinHandle | undefined | Promise<JoinHandle | undefined>): Promise<void> | undefined {
  if (!isThenable(result)) return ackJoin(conn, host, room, id, result)
  return result.then((handle) => ackJoin(conn, host, room, id, handle))
}

/** A join's `data`, checked by its TypeBox schema: the request, or undefined after answering INVALID_MESSAGE. */
function joinRequest (conn: RealtimeConnection, host: ConnectionHost, data: unknown, id: Id): JoinRequest | undefined {
  if (data === undefined) return {}
  let valid
  try {
    valid = joinDataCheck.Check(data)
  } catch {
    valid = false
  }
  if (valid) return data as JoinRequest
  host.sendError(conn, ErrorCode.INVALID_MESSAGE, id, 'Join data must be { since: { offset, epoch } } or { history: n }', schemaErrors(joinDataCheck, data))
  return undefined
}

/** Run the route's canJoin: true, false, or a promise of either; a throw or rejection is HANDLER_ERROR. */
function askCanJoin (conn: RealtimeConnection, room: string): boolean | Promise<boolean> {
  const canJoin = conn.route.canJoin
  if (canJoin === undefined) return true
  const allowed = canJoin(conn, room)
  // only a literal true admits: a truthy string or object from a sloppy check does not
  if (!isThenable(allowed)) return allowed === true
  return Promise.resolve(allowed).then((ok) => ok === true)
}

function join (conn: RealtimeConnection, host: ConnectionHost, msg: IncomingEnvelope): Promise<void> | undefined {
  const { room, id } = msg
  if (!validRoom(conn, host, room, id)) return undefined
  const request = joinRequest(conn, host, msg.data, id)
  if (request === undefined) return undefined
  // already in: no canJoin again, but what the join asks for is replayed and acked again
  if (isIn(conn, room)) return joined(conn, host, room, id, host.joinRoom(conn, room, request))
  if (roomCount(conn) >= host.maxRoomsPerConnection) {
    host.sendError(conn, ErrorCode.TOO_MANY_ROOMS, id)
    return undefined
  }
  let allowed
  try {
    allowed = askCanJoin(conn, room)
  } catch (err) {
    return handlerFailed(conn, host, id, err)
  }
  if (typeof allowed === 'boolean') return allowed ? admit(conn, host, room, id, request) : forbid(conn, host, id)
  return allowed.then(
    (ok) => ok ? admit(conn, host, room, id, request) : forbid(conn, host, id),
    (err) => handlerFailed(conn, host, id, err)
  )
}

function forbid (conn: RealtimeConnection, host: ConnectionHost, id: Id): undefined {
  host.sendError(conn, ErrorCode.FORBIDDEN, id)
  return undefined
}

function admit (conn: RealtimeConnection, host: ConnectionHost, room: string, id: Id, request: JoinRequest): Promise<void> | undefined {
  if (!conn.open) return undefined
  // while canJoin was pending, server code may have joined this connection to other rooms
  if (!isIn(conn, room) && roomCount(conn) >= host.maxRoomsPerConnection) {
    host.sendError(conn, ErrorCode.TOO_MANY_ROOMS, id)
    return undefined
  }
  return joined(conn, host, room, id, host.joinRoom(conn, room, request))
}

function leave (conn: RealtimeConnection, host: ConnectionHost, msg: IncomingEnvelope): Promise<void> | undefined {
  const { room, id } = msg
  if (!validRoom(conn, host, room, id)) return undefined
  if (!isIn(conn, room)) {
    host.sendError(conn, ErrorCode.NOT_IN_ROOM, id)
    return undefined
  }
  const left = host.leaveRoom(conn, room)
  if (left === undefined) {
    ackRoom(conn, id, { room })
    return undefined
  }
  return left.then(() => ackRoom(conn, id, { room }))
}

/**
 * A fresh token for the same identity: it never switches users (the verified
 * `sub` must be the handshake's), and every room is checked against the new
 * claims; a room the token no longer grants is left with a `kicked` envelope.
 */
async function refreshToken (conn: RealtimeConnection, host: ConnectionHost, msg: IncomingEnvelope): Promise<void> {
  const token = (msg.data as { token?: unknown } | undefined)?.token
  let verified
  try {
    if (typeof token !== 'string' || token === '') throw new Error('no token')
    verified = await verifyToken(conn.request as FastifyRequest, { token, source: 'custom' })
    if (verified.sub !== conn.sub) throw new Error('token is for another user')
  } catch {
    conn.close(CloseCode.TOKEN_INVALID, 'invalid token')
    return
  }
  if (!conn.open) return
  conn.user = verified.user
  armExpiry(conn, verified.expiresAt)
  const checks = [...conn.rooms].map(async (room) => {
    let allowed = false
    try {
      allowed = await askCanJoin(conn, room)
    } catch (err) {
      conn.log.error({ err, connId: conn.id, room }, 'fastify-realtime: canJoin failed on token refresh; leaving the room')
    }
    if (!allowed && conn.open) await host.leaveRoom(conn, room, KickCode.FORBIDDEN)
  })
  await Promise.all(checks)
  if (msg.id !== undefined && conn.open) conn.sendPayload(serializeAck(msg.id, undefined))
}

function runHandler (conn: RealtimeConnection, host: ConnectionHost, msg: IncomingEnvelope): Promise<void> | undefined {
  const { id, room } = msg
  const def = conn.route.messages.get(msg.type)
  if (def === undefined) {
    host.sendError(conn, ErrorCode.UNKNOWN_TYPE, id, `Unknown message type ${JSON.stringify(msg.type.slice(0, 128))}`)
    return undefined
  }
  if (room !== undefined) {
    if (!validRoom(conn, host, room, id)) return undefined
    if (!isIn(conn, room)) {
      host.sendError(conn, ErrorCode.NOT_IN_ROOM, id)
      return undefined
    }
  }
  const details = validate(def, msg.data)
  if (details !== undefined) {
    host.sendError(conn, ErrorCode.INVALID_MESSAGE, id, undefined, details)
    return undefined
  }
  let result: unknown
  try {
    result = invokeHandler(conn, def.handler, msg, host.metrics)
  } catch (err) {
    return handlerFailed(conn, host, id, err)
  }
  if (!isThenable(result)) return ack(conn, host, id, result, def)
  return Promise.resolve(result).then((value) => ack(conn, host, id, value, def), (err) => handlerFailed(conn, host, id, err))
}

/** undefined when `data` matches the schema, else the INVALID_MESSAGE details. */
function validate (def: CompiledMessage, data: unknown): Detail[] | undefined {
  try {
    if (def.check.Check(data)) return undefined
    return schemaErrors(def.check, data)
  } catch {
    // a recursive schema meeting absurdly deep data can exhaust the stack: that is bad input, not a crash
    return [{ path: '/', message: 'Data could not be validated (nested too deeply?)' }]
  }
}

function ack (conn: RealtimeConnection, host: ConnectionHost, id: Id, data: unknown, def: CompiledMessage): undefined {
  if (id === undefined) return undefined
  if (def.ack !== undefined && host.validateOutgoing) {
    // a result that breaks the declared ack is the handler's bug: logged, HANDLER_ERROR to the client
    const invalid = ackError(def.type, def.ack, data)
    if (invalid !== undefined) return handlerFailed(conn, host, id, invalid)
  }
  let payload
  try {
    payload = serializeAck(id, data)
  } catch (err) {
    return handlerFailed(conn, host, id, err)
  }
  conn.sendPayload(payload)
  return undefined
}

function handlerFailed (conn: RealtimeConnection, host: ConnectionHost, id: Id, err: unknown): undefined {
  if (err instanceof RealtimeError) {
    host.sendError(conn, err.code, id, err.message, err.details)
    return undefined
  }
  conn.log.error({ err, connId: conn.id }, 'fastify-realtime: message handler failed')
  host.sendError(conn, ErrorCode.HANDLER_ERROR, id)
  return undefined
}

function isThenable (value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function'
}
