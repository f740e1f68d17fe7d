import { CloseCode, ErrorCode, RealtimeError } from './errors.js'
import { PONG, parseEnvelope, roomCheck, schemaErrors, serializeAck } from './envelope.js'
import { tokenExpiry, verifyToken } from './auth.js'
import type { Connection } from './connection.js'
import type { CompiledMessage } from './route.js'
import type { RealtimeServer } from './server.js'
import type { IncomingEnvelope, Member } from './types.js'

type Id = string | number | undefined

/**
 * Handle one incoming text frame. Returns a promise only when the work went
 * async (a handler, canJoin or adapter), so the connection can hold later
 * messages until it settles; everything synchronous stays synchronous.
 * It never throws: it runs inside the socket's 'message' listener.
 */
export function dispatchMessage (conn: Connection, server: RealtimeServer, text: string): Promise<void> | undefined {
  const parsed = parseEnvelope(text)
  if (!parsed.ok) {
    conn.sendError(parsed.code, parsed.id)
    return undefined
  }
  const msg = parsed.envelope
  try {
    switch (msg.type) {
      case 'ping':
        conn.sendPayload(PONG)
        return undefined
      case 'join':
        return join(conn, server, msg)
      case 'leave':
        return leave(conn, server, msg)
      case 'auth':
        return refreshToken(conn, msg)
      default:
        return runHandler(conn, msg)
    }
  } catch (err) {
    // a bug or a misbehaving adapter must not become an uncaught exception
    return handlerFailed(conn, msg.id, err)
  }
}

function validRoom (conn: Connection, room: unknown, id: Id): room is string {
  if (roomCheck.Check(room)) return true
  conn.sendError(ErrorCode.INVALID_ROOM, id)
  return false
}

function ackRoom (conn: Connection, id: Id, data: unknown): void {
  if (id !== undefined) conn.sendPayload(serializeAck(id, data))
}

/** The join ack: `{ room }`, plus the members on every instance when the route has presence. */
function ackJoin (conn: Connection, server: RealtimeServer, room: string, id: Id): Promise<void> | undefined {
  if (id === undefined) return undefined
  if (!conn.route.presence) {
    ackRoom(conn, id, { room })
    return undefined
  }
  return server.members(room).then(
    (members) => ackRoom(conn, id, { room, members }),
    (err: unknown) => {
      // the adapter cannot say who is elsewhere; answer with who is here
      server.log.warn({ err, room }, 'fastify-realtime: members() failed; join ack lists local members')
      const members: Member[] = server.localMembers(room)
      ackRoom(conn, id, { room, members })
    })
}

function join (conn: Connection, server: RealtimeServer, msg: IncomingEnvelope): Promise<void> | undefined {
  const { room, id } = msg
  if (!validRoom(conn, room, id)) return undefined
  if (conn.rooms.has(room)) return ackJoin(conn, server, room, id)
  if (conn.rooms.size >= server.options.maxRoomsPerConnection) {
    conn.sendError(ErrorCode.TOO_MANY_ROOMS, id)
    return undefined
  }
  const canJoin = conn.route.canJoin
  if (canJoin === undefined) return admit(conn, server, room, id)
  let allowed
  try {
    allowed = canJoin(conn, room)
  } catch (err) {
    return handlerFailed(conn, id, err)
  }
  // only a literal true admits: a truthy string or object from a sloppy check does not
  if (!isThenable(allowed)) return allowed === true ? admit(conn, server, room, id) : forbid(conn, id)
  return Promise.resolve(allowed).then(
    (ok) => ok === true ? admit(conn, server, room, id) : forbid(conn, id),
    (err) => handlerFailed(conn, id, err)
  )
}

function forbid (conn: Connection, id: Id): undefined {
  conn.sendError(ErrorCode.FORBIDDEN, id)
  return undefined
}

function admit (conn: Connection, server: RealtimeServer, room: string, id: Id): Promise<void> | undefined {
  if (!conn.open) return undefined
  // while canJoin was pending, server code may have joined this connection to other rooms
  if (!conn.rooms.has(room) && conn.rooms.size >= server.options.maxRoomsPerConnection) {
    conn.sendError(ErrorCode.TOO_MANY_ROOMS, id)
    return undefined
  }
  const joined = server.joinRoom(conn, room)
  if (joined === undefined) return ackJoin(conn, server, room, id)
  return joined.then(() => ackJoin(conn, server, room, id))
}

function leave (conn: Connection, server: RealtimeServer, msg: IncomingEnvelope): Promise<void> | undefined {
  const { room, id } = msg
  if (!validRoom(conn, room, id)) return undefined
  if (!conn.rooms.has(room)) {
    conn.sendError(ErrorCode.NOT_IN_ROOM, id)
    return undefined
  }
  const left = server.leaveRoom(conn, room)
  if (left === undefined) {
    ackRoom(conn, id, { room })
    return undefined
  }
  return left.then(() => ackRoom(conn, id, { room }))
}

async function refreshToken (conn: Connection, msg: IncomingEnvelope): Promise<void> {
  const token = (msg.data as { token?: unknown } | undefined)?.token
  const previous = conn.sub
  try {
    if (typeof token !== 'string' || token === '') throw new Error('no token')
    const user = await verifyToken(conn.request, { token, source: 'custom' })
    // a refresh renews the same identity; it never switches users, nor makes an anonymous one somebody
    // (the per-user limit and sendToUser index were set from the handshake's sub)
    const sub = typeof user.sub === 'string' ? user.sub : null
    if (sub !== previous) throw new Error('token is for another user')
    if (!conn.open) return
    conn.user = user
    conn.setExpiry(tokenExpiry(conn.request, token))
    if (msg.id !== undefined) conn.sendPayload(serializeAck(msg.id, undefined))
  } catch {
    conn.close(CloseCode.TOKEN_INVALID, 'invalid token')
  }
}

function runHandler (conn: Connection, msg: IncomingEnvelope): Promise<void> | undefined {
  const { id, room } = msg
  const def = conn.route.messages.get(msg.type)
  if (def === undefined) {
    conn.sendError(ErrorCode.UNKNOWN_TYPE, id, `Unknown message type ${JSON.stringify(msg.type)}`)
    return undefined
  }
  if (room !== undefined) {
    if (!validRoom(conn, room, id)) return undefined
    if (!conn.rooms.has(room)) {
      conn.sendError(ErrorCode.NOT_IN_ROOM, id)
      return undefined
    }
  }
  const details = validate(def, msg.data)
  if (details !== undefined) {
    conn.sendError(ErrorCode.INVALID_MESSAGE, id, undefined, details)
    return undefined
  }
  let result: unknown
  try {
    result = def.handler(conn, msg.data, msg)
  } catch (err) {
    return handlerFailed(conn, id, err)
  }
  if (!isThenable(result)) return ack(conn, id, result)
  return Promise.resolve(result).then((value) => ack(conn, id, value), (err) => handlerFailed(conn, id, err))
}

type Details = Array<{ path: string, message: string }>

/** undefined when `data` matches the schema, else the INVALID_MESSAGE details. */
function validate (def: CompiledMessage, data: unknown): Details | undefined {
  try {
    if (def.check.Check(data)) return undefined
    return schemaErrors(def.check, data)
  } catch {
    // a recursive schema meeting absurdly deep data can exhaust the stack: that is bad input, not a crash
    return [{ path: '/', message: 'Data could not be validated (nested too deeply?)' }]
  }
}

function ack (conn: Connection, id: Id, data: unknown): undefined {
  if (id === undefined) return undefined
  let payload
  try {
    payload = serializeAck(id, data)
  } catch (err) {
    return handlerFailed(conn, id, err)
  }
  conn.sendPayload(payload)
  return undefined
}

function handlerFailed (conn: Connection, id: Id, err: unknown): undefined {
  if (err instanceof RealtimeError) {
    conn.sendError(err.code, id, err.message, err.details)
    return undefined
  }
  conn.log.error({ err, connId: conn.id }, 'fastify-realtime: message handler failed')
  conn.sendError(ErrorCode.HANDLER_ERROR, id)
  return undefined
}

function isThenable (value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function'
}
