import type { FastifyRequest } from 'fastify'
import type { IncomingHttpHeaders } from 'node:http'
import type { Socket } from 'node:net'
import type { UpgradeRequestView } from './types.js'

/**
 * Header values that are the same on most connections (a browser's user agent,
 * the origin, the host, ws's own handshake values): one copy of each is kept
 * for all the connections that sent it, not one per connection.
 */
const SHARED_HEADERS = [
  'host', 'origin', 'user-agent', 'upgrade', 'connection', 'sec-websocket-version', 'sec-websocket-extensions',
  'accept-encoding', 'accept-language', 'cache-control', 'pragma', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host'
] as const
/** Values longer than this are not shared (a hostile peer's junk would only fill the table). */
const MAX_SHARED_LENGTH = 512
/** Distinct values kept before the table starts over, so its memory stays bounded. */
const MAX_SHARED_VALUES = 1024

/**
 * One app's table of shared header values (and URLs). Bounded: once it holds
 * MAX_SHARED_VALUES values it is emptied and fills again with what arrives.
 */
export class SharedStrings {
  readonly #values = new Map<string, string>()

  /** The kept copy of `value` (equal to it), keeping `value` when it is new. */
  share (value: string): string {
    if (value.length > MAX_SHARED_LENGTH) return value
    const kept = this.#values.get(value)
    if (kept !== undefined) return kept
    if (this.#values.size >= MAX_SHARED_VALUES) this.#values.clear()
    this.#values.set(value, value)
    return value
  }

  get size (): number {
    return this.#values.size
  }
}

type Listener = (...args: any[]) => void

/**
 * What `conn.request.raw` is once a connection is open: the parts of the
 * upgrade's `IncomingMessage` that Fastify's request getters and an app read
 * (`headers`, `url`, `originalUrl`, `method`, `httpVersion`, `socket`), and
 * its listener methods for `'close'`, which is the socket's. The message
 * itself, with its raw header list, its stream state and its parser leftovers,
 * is let go: on an idle connection it was the largest thing kept that a bare
 * ws socket does not keep.
 */
export class UpgradeRequest implements UpgradeRequestView {
  readonly headers: IncomingHttpHeaders
  readonly url: string
  /** set by Fastify's `rewriteUrl`: the URL the client asked for */
  readonly originalUrl: string | undefined
  readonly method: string
  readonly httpVersion: string
  readonly socket: Socket

  constructor (raw: FastifyRequest['raw'], shared: SharedStrings) {
    const headers = raw.headers
    for (const name of SHARED_HEADERS) {
      const value = headers[name]
      // the same property assigned an equal string: the object keeps its shape
      if (typeof value === 'string') headers[name] = shared.share(value)
    }
    this.headers = headers
    const url = raw.url ?? '/'
    // a query string is this connection's own (it may carry its token): not shared, not kept after it
    this.url = url.includes('?') ? url : shared.share(url)
    this.originalUrl = (raw as { originalUrl?: string }).originalUrl
    this.method = raw.method === 'GET' ? 'GET' : shared.share(raw.method ?? 'GET')
    this.httpVersion = raw.httpVersion === '1.1' ? '1.1' : raw.httpVersion
    this.socket = raw.socket
  }

  get httpVersionMajor (): number {
    return Number(this.httpVersion.split('.')[0])
  }

  get httpVersionMinor (): number {
    return Number(this.httpVersion.split('.')[1] ?? 0)
  }

  /** Node's old name for `socket`. */
  get connection (): Socket {
    return this.socket
  }

  /** The message was read whole before the upgrade. */
  get complete (): boolean {
    return true
  }

  get aborted (): boolean {
    return false
  }

  get destroyed (): boolean {
    return this.socket.destroyed
  }

  /**
   * The message's 'close' is the socket's: Fastify's `request.signal` listens
   * here, so it aborts when the connection ends; a listener added once the
   * socket is gone is called on the next tick. Other events never come.
   */
  on (event: string | symbol, listener: Listener): this {
    if (event !== 'close') return this
    if (this.socket.destroyed) process.nextTick(listener)
    else this.socket.once('close', listener)
    return this
  }

  once (event: string | symbol, listener: Listener): this {
    return this.on(event, listener)
  }

  addListener (event: string | symbol, listener: Listener): this {
    return this.on(event, listener)
  }

  removeListener (event: string | symbol, listener: Listener): this {
    if (event === 'close') this.socket.removeListener('close', listener)
    return this
  }

  off (event: string | symbol, listener: Listener): this {
    return this.removeListener(event, listener)
  }
}

/**
 * Swap the request's `IncomingMessage` for an UpgradeRequest. Everything else
 * on the request stays: decorations and what hooks set, `id`, `log`, `query`,
 * `params`, `user`, and the getters over `raw` (`headers`, `ip`, `ips`,
 * `hostname`, `url`, `method`, `socket`, `signal`).
 */
export function slimRequest (request: FastifyRequest, shared: SharedStrings): void {
  ;(request as { raw: unknown }).raw = new UpgradeRequest(request.raw, shared)
}
