import type { Hub } from './hub.js'
import type { AsyncApiDocument, BroadcastOptions, Connection, HistoryPage, HistoryReadOptions, MessageSchemas, RealtimeServer, RealtimeStats, RouteDefinition, SchemaMap } from './types.js'
import type { Member } from './protocol.js'

const kHub = Symbol('fastify-realtime.hub')

/**
 * `app.realtime`: the documented methods (RealtimeServer in types.ts) over the
 * internal hub, and nothing else.
 */
class RealtimeFacade implements RealtimeServer {
  readonly [kHub]: Hub
  readonly #addRoute: (def: RouteDefinition<any, any, any>) => void
  readonly #describe: () => AsyncApiDocument

  constructor (hub: Hub, addRoute: (def: RouteDefinition<any, any, any>) => void, describe: () => AsyncApiDocument) {
    this[kHub] = hub
    this.#addRoute = addRoute
    this.#describe = describe
  }

  route<M extends MessageSchemas, E extends SchemaMap = {}, A = {}>(def: RouteDefinition<M, E, A>): void {
    this.#addRoute(def)
  }

  broadcast (room: string, type: string, data?: unknown, opts?: BroadcastOptions): void {
    this[kHub].broadcast(room, type, data, opts)
  }

  send (connId: string, type: string, data?: unknown): boolean {
    return this[kHub].send(connId, type, data)
  }

  sendToUser (sub: string, type: string, data?: unknown): void {
    this[kHub].sendToUser(sub, type, data)
  }

  async members (room: string): Promise<Member[]> {
    return await this[kHub].members(room)
  }

  rooms (): string[] {
    return this[kHub].rooms()
  }

  connections (): Connection[] {
    return this[kHub].connections()
  }

  stats (): RealtimeStats {
    return this[kHub].stats()
  }

  history (room: string, opts?: HistoryReadOptions): Promise<HistoryPage> {
    return this[kHub].history(room, opts)
  }

  get draining (): boolean {
    return this[kHub].closing
  }

  asyncapi (): AsyncApiDocument {
    return this.#describe()
  }
}

/** Build `app.realtime` over `hub`. */
export function createRealtimeServer (hub: Hub, addRoute: (def: RouteDefinition<any, any, any>) => void, describe: () => AsyncApiDocument): RealtimeServer {
  return new RealtimeFacade(hub, addRoute, describe)
}

/** The hub behind an `app.realtime` (for the plugin's own modules and tests). */
export function hubOf (server: RealtimeServer): Hub {
  return (server as unknown as RealtimeFacade)[kHub]
}
