import type { FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import { describeRoutes } from './asyncapi.js'
import { compileRoute, schemasOf, type CompiledRoute } from './context.js'
import { errors } from './errors.js'
import { HeartbeatSweep } from './heartbeat.js'
import { Hub } from './hub.js'
import { redactNotFound, warnIfQueryTokensLogged } from './log.js'
import { createMetrics } from './metrics.js'
import { resolveOptions } from './options.js'
import { registerRoute } from './route.js'
import { SchemaCompiler } from './schema.js'
import { createRealtimeServer } from './server.js'
import { assertDrainFits, closeAllConnections, closingRetryAfter } from './shutdown.js'
import type { RealtimeOptions, RealtimeServer, RouteDefinition } from './types.js'
import { UpgradeSockets } from './ws/upgrades.js'
import { useWebsocket } from './ws/websocket.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The realtime server: broadcast, send, rooms, members, stats. */
    realtime: RealtimeServer
  }
}

const plugin: FastifyPluginAsync<RealtimeOptions> = async function fastifyRealtime (app, opts) {
  const options = resolveOptions(opts)
  assertDrainFits(options, app.initialConfig.pluginTimeout)
  if (options.auth.required && !app.hasRequestDecorator('jwtVerify')) throw new errors.FST_REALTIME_JWT_MISSING()
  // the plugin reads ?token= unless the app reads tokens itself
  warnIfQueryTokensLogged(app, options.auth.extractToken === undefined)
  // requests answered by Fastify's not-found handler: its log line spells out the URL
  app.addHook('preHandler', redactNotFound)

  let ready = false
  const hub = new Hub(options, app.log)
  // before any route: each one labels the metrics and counts its refusals
  if (options.metrics !== undefined) hub.metrics = await createMetrics(options.metrics, hub)
  const upgrades = new UpgradeSockets(app.server, () => hub.closing ? closingRetryAfter(hub) : undefined)
  const schemas = new SchemaCompiler()
  const routes: CompiledRoute[] = []
  const server = createRealtimeServer(hub, (def: RouteDefinition<any, any, any>) => {
    if (ready) throw new errors.FST_REALTIME_ROUTE_AFTER_READY(JSON.stringify(def?.path))
    const route = compileRoute(def, options.canJoin, schemas)
    hub.outgoing.declare(route)
    registerRoute(app, hub, upgrades, route)
    routes.push(route)
  }, () => describeRoutes(routes, { authRequired: options.auth.required, info: options.asyncapi?.info }))
  app.decorate('realtime', server)
  if (options.asyncapi !== undefined) app.get(options.asyncapi.path, async () => server.asyncapi())

  const heartbeat = options.heartbeat === false ? undefined : new HeartbeatSweep(options.heartbeat.interval, () => hub.connections())

  // Registered before @fastify/websocket's own preClose, so clients get 1001 first.
  app.addHook('preClose', async () => {
    heartbeat?.stop()
    await closeAllConnections(hub)
    await upgrades.endRefused(options.closeGracePeriod, () => hub.limits.active > hub.connections().length, function * () {
      for (const conn of hub.connections()) yield conn.ws
    })
  })
  app.addHook('onClose', async () => {
    upgrades.stop()
    hub.metrics?.detach()
    await hub.closeHistory()
    await hub.adapter.close()
  })

  hub.foreignWebsocket = await useWebsocket(app, options)
  // TypeBox 1.x is ESM only: its compiler is imported now if the routes use it
  await schemas.prepare(options.routes.flatMap((def) => [...schemasOf(def)]))
  for (const def of options.routes) server.route(def)
  await hub.adapter.attach(hub)
  // last: a registration that failed earlier leaves nothing in the registry
  hub.metrics?.attach()

  app.addHook('onReady', async () => {
    // 1.x schemas of routes added after registration compile once their compiler is loaded
    await schemas.settled()
    ready = true
    heartbeat?.start()
  })
}

/**
 * Real-time rooms over WebSocket for Fastify.
 * @example
 * await app.register(jwt, { secret })
 * await app.register(realtime, { routes: [{ path: '/chat', messages: {} }] })
 */
export const realtime = fp(plugin, { fastify: '5.x', name: 'fastify-realtime' })
export default realtime

export { RealtimeError, errors } from './errors.js'
export { ErrorCode, CloseCode, KickCode } from './protocol.js'
export { memoryAdapter, MemoryAdapter } from './adapters/memory.js'
export type * from './adapters/adapter.js'
export { defineRoute } from './define.js'
export { redactedRequest as requestSerializer } from './log.js'
export type * from './types.js'
