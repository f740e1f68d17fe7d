import type { FastifyInstance } from 'fastify'
import type { RouteDefinition } from 'fastify-realtime'

export declare const ROOMS: string[]
export declare function chatRoute (rooms?: string[]): RouteDefinition<any>
export declare function build (options: {
  jwtSecret: string
  https?: { key: Buffer | string, cert: Buffer | string }
  logger?: boolean | object
  rooms?: string[]
  tokenTtl?: string | number
  adapter?: unknown
  history?: false | { size: number, ttl?: number, rooms?: (room: string) => boolean }
}): Promise<FastifyInstance>
