import type { WebSocket } from 'ws'
import { releaseHeldFrames } from './connection.js'
import { CloseCode } from './errors.js'
import type { RealtimeServer } from './server.js'

/**
 * `app.close()`: refuse new upgrades, send 1001 to every client, wait for them
 * up to `closeGracePeriod`, then terminate the rest.
 */
export async function closeAllConnections (server: RealtimeServer): Promise<void> {
  server.closing = true
  const open = server.connections()
  if (open.length === 0) return
  const all = Promise.all(open.map((conn) => new Promise<void>((resolve) => {
    if (conn.ws.readyState === 3) resolve()
    else conn.ws.once('close', () => resolve())
  })))
  for (const conn of open) conn.close(CloseCode.GOING_AWAY, 'server shutting down')
  server.writer.flush()
  await within(all, server.options.closeGracePeriod)
  for (const conn of open) {
    if (conn.ws.readyState !== 3) conn.terminate()
  }
  // a destroyed socket closes within a turn or two: let every onClose run before close() goes on
  await within(all, TERMINATE_WAIT_MS)
}

/** How long `app.close()` waits for terminated sockets to report their close. */
const TERMINATE_WAIT_MS = 1000

/**
 * Wait for `promise`, at most `ms`. The timer is not unref()'d: `app.close()`
 * is awaited, and with only injected sockets left nothing else would keep the
 * process alive until it resolves. It never outlives the wait.
 */
async function within (promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<void>((resolve) => { timer = setTimeout(resolve, ms) })
  await Promise.race([promise, timeout])
  clearTimeout(timer)
}

interface WsLimits {
  _receiver?: { _maxPayload: number }
  _extensions: Record<string, { _maxPayload?: number } | undefined>
}

/**
 * When the app registered @fastify/websocket itself, its options are not ours:
 * apply `maxPayload` per socket, and turn the bare `close()` its default
 * preClose sends (clients would see 1005) into 1001.
 */
export function adoptForeignSocket (ws: WebSocket, maxPayload: number): void {
  const internals = ws as unknown as WsLimits
  if (internals._receiver !== undefined) internals._receiver._maxPayload = maxPayload
  // with compression the inflater enforces the limit on the inflated size
  const deflate = internals._extensions['permessage-deflate']
  if (deflate !== undefined) deflate._maxPayload = maxPayload
  const close = ws.close
  ws.close = function closeGoingAway (code?: number, reason?: string | Buffer) {
    // as RealtimeSocket does for the plugin's own sockets
    releaseHeldFrames(this)
    // ws answers a client's code-less close frame with a bare close() too: leave that be
    const answering = (this as unknown as { _closeFrameReceived: boolean })._closeFrameReceived
    if (code === undefined && !answering) close.call(this, CloseCode.GOING_AWAY, 'server shutting down')
    else close.call(this, code, reason)
  }
}
