import type { RealtimeConnection } from './connection.js'
import { errors } from './errors.js'
import type { Hub } from './hub.js'
import type { ResolvedOptions } from './options.js'
import { CloseCode } from './protocol.js'
import { frameWriter } from './ws/writer.js'

/** How long `app.close()` waits for terminated sockets to report their close. */
const TERMINATE_WAIT_MS = 1000

/**
 * Fastify bounds `app.close()` by its `pluginTimeout` (default 10 s) too: a
 * drain that could outlast it would make `app.close()` fail mid-deploy. Fail
 * `register` instead, naming the option and the way out.
 */
export function assertDrainFits (options: ResolvedOptions, pluginTimeout: number | undefined): void {
  const { spread } = options.drain
  const timeout = pluginTimeout ?? 10_000
  if (spread === 0 || timeout === 0) return
  const longest = spread + options.closeGracePeriod + TERMINATE_WAIT_MS
  if (longest < timeout) return
  throw new errors.FST_REALTIME_INVALID_OPTION('drain.spread',
    `(${spread} ms), with closeGracePeriod (${options.closeGracePeriod} ms) and 1 s for terminated sockets, must end within Fastify's pluginTimeout (${timeout} ms), which bounds app.close() too; ` +
    `raise it, e.g. Fastify({ pluginTimeout: ${Math.ceil((longest + 5000) / 1000) * 1000} }), or lower drain.spread`)
}

/** The close a shutdown sends: 1012 with a retry hint while draining over a spread, else 1001. */
export function shutdownClose (hub: Hub): { code: number, reason: string } {
  const { spread, retry } = hub.options.drain
  return spread > 0
    ? { code: CloseCode.SERVICE_RESTART, reason: `retry ${retry}` }
    : { code: CloseCode.GOING_AWAY, reason: 'server shutting down' }
}

/** `Retry-After` (whole seconds, at least 1) of an upgrade refused while the app closes. */
export function closingRetryAfter (hub: Hub): number {
  return Math.max(1, Math.ceil(hub.options.drain.retry / 1000))
}

/**
 * `app.close()`: refuse new upgrades; with `drain.spread` 0, send 1001 to every
 * client at once, else close them with 1012 in random order, evenly over
 * `spread` ms; then wait for them up to `closeGracePeriod` and terminate the rest.
 */
export async function closeAllConnections (hub: Hub): Promise<void> {
  hub.closing = true
  const open = hub.connections()
  if (open.length === 0) return
  const all = Promise.all(open.map((conn) => new Promise<void>((resolve) => {
    if (conn.ws.readyState === 3) resolve()
    else conn.ws.once('close', () => resolve())
  })))
  const { code, reason } = shutdownClose(hub)
  const spread = hub.options.drain.spread
  if (spread > 0) {
    await closeSpread(shuffle(open), spread, code, reason)
  } else {
    for (const conn of open) conn.close(code, reason)
  }
  frameWriter.flush()
  await within(all, hub.options.closeGracePeriod)
  for (const conn of open) {
    if (conn.ws.readyState !== 3) conn.terminate()
  }
  // a destroyed socket closes within a turn or two: let every onClose run before close() goes on
  await within(all, TERMINATE_WAIT_MS)
}

/** Fisher-Yates, in place: who goes first is random, so no client is always the last. */
function shuffle<T> (items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    const item = items[i]
    items[i] = items[j]
    items[j] = item
  }
  return items
}

/**
 * Close connection i of n at `i * spread / n` ms from now: evenly over the
 * spread, the first at once. One timer at a time, woken when the next one is
 * due (at least 1 ms apart), so a late wake-up closes every one that is due.
 */
async function closeSpread (conns: RealtimeConnection[], spread: number, code: number, reason: string): Promise<void> {
  const n = conns.length
  const started = Date.now()
  let next = 0
  while (next < n) {
    const elapsed = Date.now() - started
    const due = Math.min(n, Math.floor(elapsed * n / spread) + 1)
    for (; next < due; next++) {
      const conn = conns[next]
      if (!conn.closing) conn.close(code, reason)
    }
    if (next >= n) break
    const wait = Math.max(1, Math.ceil(next * spread / n) - (Date.now() - started))
    await new Promise<void>((resolve) => { setTimeout(resolve, wait) })
  }
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
