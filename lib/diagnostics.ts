// Node's diagnostics_channel, as undici and Fastify publish theirs (SPEC 12):
// connection open and close, and a tracing channel around each message
// handler. Published whether or not metrics are on; when nobody subscribes,
// each publish point costs a `hasSubscribers` check and nothing is built.
import diagnostics from 'node:diagnostics_channel'
import type { RealtimeConnection } from './connection.js'
import type { CompiledMessage } from './context.js'
import type { RealtimeMetrics } from './metrics.js'
import type { IncomingEnvelope } from './protocol.js'
import type { Connection } from './types.js'

export const OPEN_CHANNEL = 'fastify-realtime:connection:open'
export const CLOSE_CHANNEL = 'fastify-realtime:connection:close'
export const MESSAGE_CHANNEL = 'fastify-realtime:message'

/**
 * The context of `fastify-realtime:message` events. `result` is set (to the
 * handler's value, even undefined) when a handler returned; `error` when it
 * threw or its promise rejected. At `end`, neither is set while a promise is
 * still pending: `asyncStart` and `asyncEnd` follow when it settles.
 */
export interface MessageContext {
  connection: Connection
  type: string
  room?: string
  result?: unknown
  error?: unknown
}

const openChannel = diagnostics.channel(OPEN_CHANNEL)
const closeChannel = diagnostics.channel(CLOSE_CHANNEL)
const message = diagnostics.tracingChannel<unknown, MessageContext>(MESSAGE_CHANNEL)

export function publishOpen (connection: Connection): void {
  if (openChannel.hasSubscribers) openChannel.publish({ connection })
}

export function publishClose (connection: Connection, code: number, reason: string): void {
  if (closeChannel.hasSubscribers) closeChannel.publish({ connection, code, reason })
}

/** Whether anyone listens to the message tracing channel (its own hasSubscribers is Node 20.13+). */
function tracing (): boolean {
  return message.start.hasSubscribers || message.end.hasSubscribers || message.asyncStart.hasSubscribers ||
    message.asyncEnd.hasSubscribers || message.error.hasSubscribers
}

function isThenable (value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function'
}

/**
 * Run a message handler, traced on `fastify-realtime:message` and timed for
 * `handler_duration_seconds`, failures included. The events follow
 * `tracingChannel.traceSync` for a handler that returns a value and
 * `tracePromise` for one that returns a promise (which one is only known once
 * it returned). Returns or throws what the handler did; for a promise, one
 * that settles as the handler's does.
 */
export function invokeHandler (conn: RealtimeConnection, handler: CompiledMessage['handler'], msg: IncomingEnvelope, metrics: RealtimeMetrics | undefined): unknown {
  const traced = tracing()
  if (!traced && metrics === undefined) return handler(conn, msg.data, msg)
  const started = metrics === undefined ? 0 : performance.now()
  if (!traced) return observed(conn, handler, msg, undefined, metrics, started)
  const context: MessageContext = msg.room === undefined ? { connection: conn, type: msg.type } : { connection: conn, type: msg.type, room: msg.room }
  // runStores publishes `start` and runs the handler inside any store bound to it (AsyncLocalStorage)
  return message.start.runStores(context, () => observed(conn, handler, msg, context, metrics, started))
}

function observed (conn: RealtimeConnection, handler: CompiledMessage['handler'], msg: IncomingEnvelope, context: MessageContext | undefined,
  metrics: RealtimeMetrics | undefined, started: number): unknown {
  const done = (): void => { metrics?.observeHandler(conn.route.path, msg.type, (performance.now() - started) / 1000) }
  let result
  try {
    result = handler(conn, msg.data, msg)
  } catch (err) {
    done()
    if (context !== undefined) {
      context.error = err
      message.error.publish(context)
      message.end.publish(context)
    }
    throw err
  }
  if (!isThenable(result)) {
    done()
    if (context !== undefined) {
      context.result = result
      message.end.publish(context)
    }
    return result
  }
  if (context !== undefined) message.end.publish(context)
  return Promise.resolve(result).then((value) => {
    done()
    if (context !== undefined) {
      context.result = value
      message.asyncStart.publish(context)
      message.asyncEnd.publish(context)
    }
    return value
  }, (err: unknown) => {
    done()
    if (context !== undefined) {
      context.error = err
      message.error.publish(context)
      message.asyncStart.publish(context)
      message.asyncEnd.publish(context)
    }
    throw err
  })
}
