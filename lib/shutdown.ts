import type { Hub } from './hub.js'
import { CloseCode } from './protocol.js'
import { frameWriter } from './ws/writer.js'

/** How long `app.close()` waits for terminated sockets to report their close. */
const TERMINATE_WAIT_MS = 1000

/**
 * `app.close()`: refuse new upgrades, send 1001 to every client, wait for them
 * up to `closeGracePeriod`, then terminate the rest.
 */
export async function closeAllConnections (hub: Hub): Promise<void> {
  hub.closing = true
  const open = hub.connections()
  if (open.length === 0) return
  const all = Promise.all(open.map((conn) => new Promise<void>((resolve) => {
    if (conn.ws.readyState === 3) resolve()
    else conn.ws.once('close', () => resolve())
  })))
  for (const conn of open) conn.close(CloseCode.GOING_AWAY, 'server shutting down')
  frameWriter.flush()
  await within(all, hub.options.closeGracePeriod)
  for (const conn of open) {
    if (conn.ws.readyState !== 3) conn.terminate()
  }
  // a destroyed socket closes within a turn or two: let every onClose run before close() goes on
  await within(all, TERMINATE_WAIT_MS)
}

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
