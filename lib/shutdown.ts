import type { WebSocket } from 'ws'
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
  const closed = open.map((conn) => new Promise<void>((resolve) => {
    if (conn.ws.readyState === 3) resolve()
    else conn.ws.once('close', () => resolve())
  }))
  for (const conn of open) conn.close(CloseCode.GOING_AWAY, 'server shutting down')
  server.writer.flush()
  let timer: NodeJS.Timeout | undefined
  const grace = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, server.options.closeGracePeriod)
    timer.unref()
  })
  await Promise.race([Promise.all(closed), grace])
  clearTimeout(timer)
  for (const conn of open) {
    if (conn.ws.readyState !== 3) conn.terminate()
  }
}

interface WsReceiver { _receiver?: { _maxPayload: number } }

/**
 * When the app registered @fastify/websocket itself, its options are not ours:
 * apply `maxPayload` per socket, and turn the bare `close()` its default
 * preClose sends (clients would see 1005) into 1001.
 */
export function adoptForeignSocket (ws: WebSocket, maxPayload: number): void {
  const receiver = (ws as unknown as WsReceiver)._receiver
  if (receiver !== undefined) receiver._maxPayload = maxPayload
  const close = ws.close
  ws.close = function closeGoingAway (code?: number, reason?: string | Buffer) {
    if (code === undefined) close.call(this, CloseCode.GOING_AWAY, 'server shutting down')
    else close.call(this, code, reason)
  }
}
