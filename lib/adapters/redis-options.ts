import type { Redis } from 'ioredis'
import { errors } from '../errors.js'

export interface RedisAdapterOptions {
  /** [redis://127.0.0.1:6379] where the adapter connects when no `client` is given; it closes what it opens. */
  url?: string
  /** An ioredis client to publish and keep members with. Yours: the adapter never closes it. */
  client?: Redis
  /** An ioredis client for SUBSCRIBE (it enters subscriber mode). Default: a duplicate of `client`, closed by the adapter. */
  subscriber?: Redis
  /** ['fastify-realtime'] prefix of every channel and key, so several apps can share one Redis. */
  keyPrefix?: string
  /** [5000] ms between refreshes of this instance's liveness key. */
  heartbeatInterval?: number
  /**
   * [15000] ms the liveness key lives: a crashed instance's members leave `members()` within this,
   * and one survivor announces their presence `leave` a heartbeat later; member hashes expire
   * three times this after the last live instance refreshed them.
   */
  instanceTtl?: number
}

/** Options after defaults and validation. */
export interface ResolvedRedisOptions {
  url: string
  client: Redis | undefined
  subscriber: Redis | undefined
  keyPrefix: string
  heartbeatInterval: number
  instanceTtl: number
}

const MAX_TIMER_MS = 2 ** 31 - 1

function fail (name: string, problem: string): never {
  throw new errors.FST_REALTIME_INVALID_OPTION(`redisAdapter.${name}`, problem)
}

function isRedis (value: unknown): value is Redis {
  const r = value as Partial<Redis> | null
  return typeof r?.publish === 'function' && typeof r.subscribe === 'function' && typeof r.duplicate === 'function'
}

function positive (name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_TIMER_MS) {
    fail(name, `must be an integer from 1 to ${MAX_TIMER_MS}, got ${JSON.stringify(value)}`)
  }
  return value
}

/**
 * Applies the defaults and validates every option, naming the bad one
 * (`redisAdapter.keyPrefix`, ...).
 */
export function resolveRedisOptions (options: RedisAdapterOptions): ResolvedRedisOptions {
  if (options === null || typeof options !== 'object') fail('options', 'must be an object')
  const { url, client, subscriber, keyPrefix = 'fastify-realtime', heartbeatInterval = 5000 } = options
  if (url !== undefined && typeof url !== 'string') fail('url', 'must be a redis:// URL string')
  if (url !== undefined && client !== undefined) fail('url', 'cannot be combined with client; pass one of them')
  if (client !== undefined && !isRedis(client)) fail('client', 'must be an ioredis client')
  if (subscriber !== undefined && !isRedis(subscriber)) fail('subscriber', 'must be an ioredis client')
  if (subscriber !== undefined && subscriber === client) fail('subscriber', 'must be a separate connection from client (it enters subscriber mode)')
  if (typeof keyPrefix !== 'string' || keyPrefix === '' || /\s/.test(keyPrefix)) fail('keyPrefix', 'must be a non-empty string without whitespace')
  const interval = positive('heartbeatInterval', heartbeatInterval)
  const ttl = positive('instanceTtl', options.instanceTtl ?? interval * 3)
  if (ttl <= interval) fail('instanceTtl', 'must be longer than heartbeatInterval')
  return { url: url ?? 'redis://127.0.0.1:6379', client, subscriber, keyPrefix, heartbeatInterval: interval, instanceTtl: ttl }
}
