import type { FastifyReply, FastifyRequest } from 'fastify'
import { canVerify, findToken, verifyToken } from './auth.js'
import type { Handshake } from './connection.js'
import { errors } from './errors.js'
import type { Hub } from './hub.js'
import type { ConnectionLimits } from './limits.js'
import { isOriginAllowed } from './origin.js'
import { closingRetryAfter } from './shutdown.js'
import type { AllowedOrigins } from './types.js'

/** Seconds a refused client should wait before it tries again. */
const RETRY_AFTER_SECONDS = '5'

/**
 * The connection slot (and per-user slot) a handshake holds from its first
 * check on. Released when the handshake fails, or by the connection it became.
 */
export class HandshakeSlot {
  #held = true
  #adopted = false
  readonly #limits: ConnectionLimits
  sub: string | null = null

  constructor (limits: ConnectionLimits) {
    this.#limits = limits
  }

  /**
   * The connection now owns the slot and releases it on close with
   * `limits.release(sub)`: returns that `sub` (null without a per-user slot),
   * or undefined when nothing is held any more (the client left first).
   */
  adopt (): string | null | undefined {
    this.#adopted = true
    return this.#held ? this.sub : undefined
  }

  /** Release unless a connection adopted the slot. */
  releaseIfPending (): void {
    if (!this.#adopted) this.release()
  }

  /**
   * Takes the per-user slot of `sub` as well; false when that user is at the limit.
   * A handshake whose client already left holds nothing more (its close has run).
   */
  reserveUser (sub: string): boolean {
    if (!this.#held) return true
    if (!this.#limits.reserveUser(sub)) return false
    this.sub = sub
    return true
  }

  release (): void {
    if (!this.#held) return
    this.#held = false
    this.#limits.release(this.sub)
  }
}

/** The upgrade's ServerResponse carries its handshake's slot, so one shared listener releases any of them. */
const kSlot = Symbol('fastify-realtime.slot')
type SlotResponse = FastifyReply['raw'] & { [kSlot]?: HandshakeSlot }

/** 'prefinish' and 'close' of an upgrade's response: release its slot unless a connection adopted it (idempotent). */
function releaseSlot (this: SlotResponse): void {
  this[kSlot]?.releaseIfPending()
}

/** What each accepted handshake hands its connection, keyed by request. */
export const handshakes = new WeakMap<FastifyRequest, Handshake & { slot: HandshakeSlot }>()

function describeAllowed (allowed: AllowedOrigins | undefined): string | readonly string[] {
  if (allowed === undefined) return 'same host as the request (default)'
  if (typeof allowed === 'function') return 'a function'
  return allowed
}

function unavailable (reply: FastifyReply, retryAfter: string | number = RETRY_AFTER_SECONDS): Error {
  reply.header('Retry-After', String(retryAfter))
  return new errors.FST_REALTIME_UNAVAILABLE()
}

/**
 * The route-level `onRequest` hook of every realtime route: refuse with a real
 * HTTP answer (403, 503, 401, 429) before any 101, in that order of cost.
 */
export function createHandshakeHook (hub: Hub) {
  const { options, limits } = hub
  return async function realtimeHandshake (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    // plain HTTP to a WebSocket path: @fastify/websocket answers 404
    if (!(request as unknown as { ws?: boolean }).ws) return
    if (hub.closing) throw unavailable(reply, closingRetryAfter(hub))
    // request.host: the Host header, or X-Forwarded-Host when the app trusts its proxy
    if (!isOriginAllowed(request.headers.origin, request.host, options.allowedOrigins)) {
      request.log.warn({ origin: request.headers.origin, host: request.host, allowedOrigins: describeAllowed(options.allowedOrigins) },
        'fastify-realtime: refused a WebSocket upgrade from another origin (403); to allow it, add that origin to the allowedOrigins option')
      throw new errors.FST_REALTIME_ORIGIN_FORBIDDEN()
    }
    if (!limits.reserve()) throw unavailable(reply)
    const slot = new HandshakeSlot(limits)
    const response = reply.raw as SlotResponse
    response[kSlot] = slot
    // a later hook answered over HTTP: free the slot as that answer ends ('prefinish', as
    // under injectWS 'finish' never comes), not when the socket closes later (or never)
    response.on('prefinish', releaseSlot)
    // the client left before any answer
    response.on('close', releaseSlot)
    try {
      const found = canVerify(request) ? findToken(request, options.auth.extractToken) : undefined
      if (found === undefined && options.auth.required) throw new errors.FST_REALTIME_UNAUTHORIZED()
      const verified = found === undefined ? undefined : await verifyToken(request, found)
      const sub = verified?.sub ?? null
      // a token without a usable `sub` is anonymous: refused where auth is required
      if (sub === null && options.auth.required) throw new errors.FST_REALTIME_UNAUTHORIZED()
      if (sub !== null && !slot.reserveUser(sub)) throw new errors.FST_REALTIME_USER_LIMIT()
      if (hub.closing) throw unavailable(reply, closingRetryAfter(hub))
      handshakes.set(request, { user: verified?.user ?? null, sub, expiresAt: verified?.expiresAt, slot })
    } catch (err) {
      slot.release()
      throw err
    }
  }
}
