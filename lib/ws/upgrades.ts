import type { Server } from 'node:http'
import type { Duplex } from 'node:stream'
import type { WebSocket } from 'ws'
import { socketOf } from './internals.js'

const POLL_MS = 10

/**
 * Add `Retry-After` to the answer written on `socket` if it is a 503 without
 * one: while the app closes, Fastify answers upgrades with its own 503 before
 * any hook runs (`return503OnClosing`), with no way to add a header. Only the
 * first write is looked at (it holds the status line and the headers).
 */
function retryAfterOn503 (socket: Duplex, seconds: number): void {
  const write = socket.write
  socket.write = function (this: Duplex, chunk: unknown, ...rest: unknown[]): boolean {
    socket.write = write
    if (typeof chunk === 'string' && chunk.startsWith('HTTP/1.1 503 ') && !/\r\nretry-after:/i.test(chunk.slice(0, chunk.indexOf('\r\n\r\n') + 2))) {
      const line = chunk.indexOf('\r\n')
      chunk = chunk.slice(0, line) + `\r\nRetry-After: ${seconds}` + chunk.slice(line)
    }
    return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest)
  } as Duplex['write']
}

/**
 * Upgrade sockets not yet handed to a connection. Fastify answers upgrades with
 * 503 while closing before any hook runs, so @fastify/websocket never destroys
 * those sockets and `http.Server#close` would wait on them forever.
 */
export class UpgradeSockets {
  readonly #sockets = new Set<Duplex>()
  readonly #server: Server
  readonly #retryAfter: () => number | undefined

  readonly #onUpgrade = (_request: unknown, socket: Duplex): void => {
    this.#sockets.add(socket)
    socket.on('close', this.#onClose)
    const seconds = this.#retryAfter()
    if (seconds !== undefined) retryAfterOn503(socket, seconds)
  }

  /** One listener for every socket (`this` is the socket): no closure per upgrade. */
  readonly #onClose = ((sockets: Set<Duplex>) => function forget (this: Duplex): void {
    sockets.delete(this)
  })(this.#sockets)

  /** `retryAfter`: the `Retry-After` seconds for a 503 answered now (while the app closes), or undefined. */
  constructor (server: Server, retryAfter: () => number | undefined = () => undefined) {
    this.#server = server
    this.#retryAfter = retryAfter
    // first, so the header is in place whoever registered @fastify/websocket
    server.prependListener('upgrade', this.#onUpgrade)
  }

  /** A connection owns `ws` now: its close ends it, not endRefused. */
  adopted (ws: WebSocket): void {
    const socket = socketOf(ws)
    if (socket == null) return
    this.#sockets.delete(socket)
    socket.removeListener('close', this.#onClose)
  }

  /**
   * Let handshakes in progress finish (while `inProgress()` says so, up to
   * `graceMs`), then destroy every upgrade socket no connection owns.
   */
  async endRefused (graceMs: number, inProgress: () => boolean, owned: () => Iterable<WebSocket>): Promise<void> {
    const deadline = Date.now() + graceMs
    while (inProgress() && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS))
    }
    const keep = new Set<Duplex | null>()
    for (const ws of owned()) keep.add(socketOf(ws))
    for (const socket of this.#sockets) {
      if (!keep.has(socket)) socket.destroy()
    }
    this.#sockets.clear()
  }

  stop (): void {
    this.#server.removeListener('upgrade', this.#onUpgrade)
  }
}
