// diagnostics_channel (SPEC 12): connection open and close, and the
// `fastify-realtime:message` tracing channel around each handler, with the
// events of traceSync for a value and tracePromise for a promise; published
// with metrics off. Then the same events turned into OpenTelemetry spans, as
// docs/metrics.md shows.
import t from 'tap'
import diagnostics from 'node:diagnostics_channel'
import { Type } from '@sinclair/typebox'
import { SpanStatusCode, type Span } from '@opentelemetry/api'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { RealtimeError, type RealtimeOptions } from '../lib/index.js'
import { invokeHandler, type MessageContext } from '../lib/diagnostics.js'
import { build, closed, inject, sign, sleep } from './helpers.js'

const Any = Type.Any()

/** An app without metrics; /rt has a sync, an async, a throwing and a rejecting handler. */
async function app (t: Parameters<typeof build>[0], opts: RealtimeOptions = {}): Promise<Awaited<ReturnType<typeof build>>> {
  const server = await build(t, {
    heartbeat: false,
    closeGracePeriod: 0,
    routes: [{
      path: '/rt',
      messages: {
        sync: { schema: Any, handler: (_conn, data) => ({ got: data }) },
        nothing: { schema: Any, handler: () => {} },
        async: { schema: Any, handler: async (_conn, data) => { await sleep(1); return { later: data } } },
        throws: { schema: Any, handler: () => { throw new Error('sync failure') } },
        rejects: { schema: Any, handler: async () => { await sleep(1); throw new RealtimeError('async failure', { code: 'NOPE' }) } }
      }
    }],
    ...opts
  })
  await server.ready()
  return server
}

interface Seen { event: string, type: string, room?: string, result?: unknown, hasResult: boolean, error?: string, context: MessageContext }

/** Subscribe to every event of the message tracing channel; unsubscribed after the test. */
function traceEvents (t: { after: (fn: () => unknown) => void }): Seen[] {
  const seen: Seen[] = []
  const record = (event: string) => (message: unknown) => {
    const context = message as MessageContext
    seen.push({
      event,
      type: context.type,
      room: context.room,
      hasResult: 'result' in context,
      result: context.result,
      error: (context.error as Error | undefined)?.message,
      context
    })
  }
  const handlers = {
    start: record('start'),
    end: record('end'),
    asyncStart: record('asyncStart'),
    asyncEnd: record('asyncEnd'),
    error: record('error')
  }
  const channel = diagnostics.tracingChannel('fastify-realtime:message')
  channel.subscribe(handlers)
  t.after(() => channel.unsubscribe(handlers))
  return seen
}

t.test('connection open and close events carry the connection, and the close its code and reason', async (t) => {
  const opened: any[] = []
  const closes: any[] = []
  const onOpen = (message: unknown): void => { opened.push(message) }
  const onClose = (message: unknown): void => { closes.push(message) }
  diagnostics.subscribe('fastify-realtime:connection:open', onOpen)
  diagnostics.subscribe('fastify-realtime:connection:close', onClose)
  t.after(() => {
    diagnostics.unsubscribe('fastify-realtime:connection:open', onOpen)
    diagnostics.unsubscribe('fastify-realtime:connection:close', onClose)
  })
  const server = await app(t)
  const a = await inject(server, '/rt', sign(server, 'alice'))
  const conn = server.realtime.connections()[0]
  t.equal(opened.length, 1)
  t.same(Object.keys(opened[0]), ['connection'])
  t.equal(opened[0].connection, conn, 'the connection itself, as app.realtime.connections() has it')
  t.equal(opened[0].connection.sub, 'alice')
  await a.request({ type: 'join', room: 'r', id: 1 })

  const done = closed(a.ws)
  conn.close(4403, 'kicked out')
  await done
  await sleep(5)
  t.equal(closes.length, 1)
  t.same(Object.keys(closes[0]).sort(), ['code', 'connection', 'reason'])
  t.equal(closes[0].connection, conn)
  t.equal(closes[0].code, 4403)
  t.equal(closes[0].reason, 'kicked out')

  const b = await inject(server, '/rt', sign(server, 'bob'))
  b.ws.close(1000, 'bye')
  await closed(b.ws)
  while (closes.length < 2) await sleep(2)
  t.match(closes[1], { code: 1000, reason: 'bye', connection: { sub: 'bob' } }, 'a client-side close: the client\'s code')
})

t.test('the message tracing channel: traceSync events for values, tracePromise events for promises', async (t) => {
  const seen = traceEvents(t)
  const server = await app(t)
  const a = await inject(server, '/rt', sign(server, 'alice'))
  await a.request({ type: 'join', room: 'r', id: 'j' })
  const events = (type: string): string[] => seen.filter((s) => s.type === type).map((s) => s.event)
  t.same(seen, [], 'join, leave, ping and auth are no handler runs')

  t.same(await a.request({ type: 'sync', room: 'r', data: 1, id: 1 }), { type: 'ack', id: 1, data: { got: 1 } })
  t.same(events('sync'), ['start', 'end'])
  const sync = seen.filter((s) => s.type === 'sync')
  t.equal(sync[0].room, 'r', 'room when the message had one')
  t.equal(sync[0].hasResult, false, 'no result at start')
  t.same(sync[1].result, { got: 1 }, 'end carries the result')
  t.equal(sync[0].context, sync[1].context, 'one context object through the events')
  t.equal(sync[0].context.connection, server.realtime.connections()[0])

  await a.request({ type: 'nothing', id: 2 })
  const nothing = seen.filter((s) => s.type === 'nothing')
  t.same(nothing.map((s) => s.event), ['start', 'end'])
  t.equal(nothing[1].hasResult, true, 'a handler that returns undefined has a result (so `end` tells a finished run from a pending one)')
  t.notOk('room' in nothing[0].context, 'no room key without a room')

  t.same(await a.request({ type: 'async', data: 2, id: 3 }), { type: 'ack', id: 3, data: { later: 2 } })
  t.same(events('async'), ['start', 'end', 'asyncStart', 'asyncEnd'])
  const later = seen.filter((s) => s.type === 'async')
  t.equal(later[1].hasResult, false, 'at end the promise is pending: no result yet')
  t.same(later[2].result, { later: 2 })
  t.same(later[3].result, { later: 2 })

  t.match(await a.request({ type: 'throws', id: 4 }), { type: 'error', id: 4, code: 'HANDLER_ERROR' })
  t.same(events('throws'), ['start', 'error', 'end'])
  t.equal(seen.find((s) => s.type === 'throws' && s.event === 'error')?.error, 'sync failure')

  t.match(await a.request({ type: 'rejects', room: 'r', id: 5 }), { type: 'error', id: 5, code: 'NOPE' })
  t.same(events('rejects'), ['start', 'end', 'error', 'asyncStart', 'asyncEnd'])
  const rejected = seen.filter((s) => s.type === 'rejects')
  t.equal(rejected[1].error, undefined, 'at end the promise is pending')
  t.equal(rejected[2].error, 'async failure')
  t.equal(rejected[4].error, 'async failure')
  t.equal(rejected[0].room, 'r')

  const before = seen.length
  a.send({ type: 'sync', data: { text: 'invalid?' }, extra: 1 })
  await a.type('error')
  t.equal(seen.length, before, 'an invalid envelope runs no handler: no event')
  a.ws.close()
})

t.test('nothing is published once nobody listens; handlers run as before', async (t) => {
  const seen: string[] = []
  const onStart = (): void => { seen.push('start') }
  const channel = diagnostics.tracingChannel('fastify-realtime:message')
  channel.start.subscribe(onStart)
  const server = await app(t)
  const a = await inject(server, '/rt', sign(server, 'alice'))
  await a.request({ type: 'sync', data: 1, id: 1 })
  t.same(seen, ['start'], 'a subscriber to one event only is enough')
  channel.start.unsubscribe(onStart)
  t.same(await a.request({ type: 'async', data: 2, id: 2 }), { type: 'ack', id: 2, data: { later: 2 } })
  t.same(seen, ['start'])
  a.ws.close()
})

t.test('invokeHandler without subscribers or metrics calls the handler itself and returns what it returns', async (t) => {
  const conn = { route: { path: '/x' } } as any
  const promise = Promise.resolve(1)
  t.equal(invokeHandler(conn, () => promise, { type: 'x' }, undefined), promise, 'the very same promise: no wrapper')
  t.equal(invokeHandler(conn, () => 5, { type: 'x' }, undefined), 5)
  t.throws(() => invokeHandler(conn, () => { throw new Error('x') }, { type: 'x' }, undefined), { message: 'x' })
})

// The OpenTelemetry bridge of docs/metrics.md: a span per handler run.
function tracingBridge (provider: BasicTracerProvider): () => void {
  const tracer = provider.getTracer('fastify-realtime')
  const spans = new WeakMap<object, Span>()
  const finish = (ctx: MessageContext): void => {
    const span = spans.get(ctx)
    if (span === undefined) return
    if (ctx.error !== undefined) {
      span.recordException(ctx.error as Error)
      span.setStatus({ code: SpanStatusCode.ERROR, message: (ctx.error as Error).message })
    }
    span.end()
    spans.delete(ctx)
  }
  const handlers = {
    start (message: unknown) {
      const ctx = message as MessageContext
      spans.set(ctx, tracer.startSpan(`realtime ${ctx.type}`, {
        attributes: {
          'realtime.type': ctx.type,
          'realtime.route': ctx.connection.request.routeOptions.url ?? '',
          ...(ctx.room === undefined ? {} : { 'realtime.room': ctx.room })
        }
      }))
    },
    // a run that returned or threw has `result` or `error` at `end`; a pending promise has neither
    end (message: unknown) {
      const ctx = message as MessageContext
      if ('result' in ctx || 'error' in ctx) finish(ctx)
    },
    asyncEnd (message: unknown) { finish(message as MessageContext) },
    asyncStart () {},
    error () {}
  }
  const channel = diagnostics.tracingChannel('fastify-realtime:message')
  channel.subscribe(handlers)
  return () => channel.unsubscribe(handlers)
}

t.test('OpenTelemetry: each handler run becomes a span, failures with an error status', async (t) => {
  const exporter = new InMemorySpanExporter()
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
  t.after(tracingBridge(provider))
  t.after(() => provider.shutdown())
  const server = await app(t)
  const a = await inject(server, '/rt', sign(server, 'alice'))
  await a.request({ type: 'join', room: 'r', id: 'j' })
  await a.request({ type: 'sync', room: 'r', data: 1, id: 1 })
  await a.request({ type: 'async', data: 2, id: 2 })
  await a.request({ type: 'throws', id: 3 })
  await a.request({ type: 'rejects', id: 4 })

  const spans = exporter.getFinishedSpans()
  t.same(spans.map((s) => s.name), ['realtime sync', 'realtime async', 'realtime throws', 'realtime rejects'])
  t.same(spans[0].attributes, { 'realtime.type': 'sync', 'realtime.route': '/rt', 'realtime.room': 'r' })
  t.equal(spans[0].status.code, SpanStatusCode.UNSET)
  t.equal(spans[1].status.code, SpanStatusCode.UNSET)
  t.ok(spans[1].duration[0] > 0 || spans[1].duration[1] >= 1e6 * 0.5, 'the async span lasted until the promise settled')
  t.match(spans[2].status, { code: SpanStatusCode.ERROR, message: 'sync failure' })
  t.match(spans[3].status, { code: SpanStatusCode.ERROR, message: 'async failure' })
  t.equal(spans[2].events[0]?.name, 'exception')
  a.ws.close()
})
