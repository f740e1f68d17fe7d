import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { Type } from '@sinclair/typebox'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import { redisAdapter, type RedisAdapter, type RedisAdapterOptions } from '../../lib/adapters/redis.js'
import type { RealtimeOptions } from '../../lib/index.js'
import { build, connect, listen, sign, type Inbox } from '../helpers.js'
import { until, freePort } from '../helpers/wait.js'
export { until, freePort }

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

type Test = {
  after: (fn: () => unknown) => void
  fail: (message: string) => void
  comment: (...message: unknown[]) => void
  plan: (n: number, reason?: string) => void
}

function underCI (): boolean {
  const ci = process.env.CI
  return ci !== undefined && ci !== '' && ci !== '0' && ci.toLowerCase() !== 'false'
}

/** Why Redis at `url` cannot be used, or undefined when it answers PING. */
export async function redisMissing (url = REDIS_URL): Promise<string | undefined> {
  const redis = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 1000 })
  let cause: Error | undefined
  redis.on('error', (err: Error) => { cause ??= err })
  try {
    await redis.connect()
    await redis.ping()
    return undefined
  } catch (err) {
    return `Redis is not reachable at ${url} (${(cause ?? err as Error).message}); set REDIS_URL or start redis-server`
  } finally {
    redis.disconnect()
  }
}

/**
 * True when Redis is there. Otherwise the test file fails under CI (a missing
 * Redis must not pass CI quietly) and is skipped with the reason elsewhere.
 */
export async function requireRedis (t: Test): Promise<boolean> {
  const reason = await redisMissing()
  if (reason === undefined) return true
  if (underCI()) {
    t.fail(`CI is set and ${reason}`)
  } else {
    console.log(`# skipping the Redis tests: ${reason}`)
    t.plan(0, reason)
  }
  return false
}

/** A key prefix of its own per test, and every key under it deleted afterwards. */
export function uniquePrefix (t: Test, url = REDIS_URL): string {
  const prefix = `frt-${randomBytes(5).toString('hex')}`
  t.after(async () => {
    const redis = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 })
    redis.on('error', () => {})
    try {
      await redis.connect()
      const keys = await redis.keys(`${prefix}:*`)
      if (keys.length > 0) await redis.del(...keys)
    } catch {} finally {
      redis.disconnect()
    }
  })
  return prefix
}

/** A plain ioredis client closed after the test (for inspecting Redis, or to pass in). */
export function redisClient (t: Test, url = REDIS_URL, options: Record<string, unknown> = {}): Redis {
  const redis = new Redis(url, options)
  redis.on('error', () => {})
  t.after(() => { redis.disconnect() })
  return redis
}

export interface Instance {
  app: FastifyInstance
  adapter: RedisAdapter
  url: string
  /** A ws client for `sub` on this instance's route. */
  client: (sub: string, path?: string) => Promise<Inbox>
}

export interface InstanceOptions {
  adapter?: RedisAdapterOptions
  realtime?: RealtimeOptions
  /** Log lines (parsed) of this instance go here. */
  logs?: any[]
}

/** The routes every instance serves: `/chat` (a chat.send handler that broadcasts) and `/presence` (presence on). */
export function chatRoutes (): RealtimeOptions['routes'] {
  const messages = {
    'chat.send': {
      schema: Type.Object({ text: Type.String() }),
      handler (conn: any, data: { text: string }, msg: { room?: string }) {
        conn.broadcast(msg.room!, 'chat.message', { from: conn.user.sub, text: data.text })
        return { ok: true }
      }
    }
  }
  return [{ path: '/chat', messages }, { path: '/presence', messages, presence: true }]
}

/** One Fastify instance with @fastify/jwt, fastify-realtime and its own Redis adapter, listening on a port. */
export async function startInstance (t: Test, keyPrefix: string, opts: InstanceOptions = {}): Promise<Instance> {
  const adapter = redisAdapter({ url: REDIS_URL, keyPrefix, ...opts.adapter })
  const logs = opts.logs
  const server = logs === undefined
    ? {}
    : { logger: { level: 'debug', stream: { write: (line: string) => { logs.push(JSON.parse(line)) } } } }
  const app = await build(t, { routes: chatRoutes(), heartbeat: false, adapter, ...opts.realtime }, server)
  const url = await listen(app)
  return {
    app,
    adapter,
    url,
    client: async (sub: string, path = '/chat') => {
      const inbox = await connect(url + path, { headers: { authorization: `Bearer ${sign(app, sub)}` } })
      t.after(() => inbox.ws.terminate())
      return inbox
    }
  }
}

/** Join a room and wait for the ack (the adapter has subscribed by then). */
export async function join (inbox: Inbox, room: string): Promise<any> {
  const reply = await inbox.request({ type: 'join', room, id: `join:${room}` })
  if (reply.type !== 'ack') throw new Error(`join ${room} failed: ${JSON.stringify(reply)}`)
  return reply
}

/** The connection id of `sub` on `app` (the newest one). */
export function connId (app: FastifyInstance, sub: string): string {
  const conns = app.realtime.connections().filter((c) => c.sub === sub)
  if (conns.length === 0) throw new Error(`no connection of ${sub}`)
  return conns[conns.length - 1].id
}

/** Messages of `type` an inbox received so far. */
export function ofType (inbox: Inbox, type: string): any[] {
  return inbox.messages.filter((m) => m.type === type)
}

/** A message of `type` the inbox got at any time (Inbox.next only looks past what it already returned). */
export async function received (inbox: Inbox, type: string): Promise<any> {
  return ofType(inbox, type)[0] ?? await inbox.type(type)
}

/** A redis-server of the test's own, so stopping it disturbs no other test. */
export class PrivateRedis {
  readonly port: number
  #process: ChildProcess | undefined

  constructor (port: number) {
    this.port = port
  }

  get url (): string {
    return `redis://127.0.0.1:${this.port}`
  }

  async start (): Promise<void> {
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
    this.#process = child
    const failed = once(child, 'error').then(([err]) => { throw err })
    failed.catch(() => {})
    await Promise.race([failed, until(async () => (await redisMissing(this.url)) === undefined, 5000, 'the private redis-server')])
  }

  /** SIGSTOP: a server that hangs with its connections open. */
  pause (): void {
    this.#process?.kill('SIGSTOP')
  }

  resume (): void {
    this.#process?.kill('SIGCONT')
  }

  /** SIGKILL: the outage a crash or a network cut looks like. */
  async kill (): Promise<void> {
    const child = this.#process
    this.#process = undefined
    if (child === undefined || child.exitCode !== null) return
    const exited = once(child, 'exit')
    child.kill('SIGKILL')
    await exited
  }
}

/** Why a private redis-server cannot be started here, or undefined. */
export function redisServerMissing (): string | undefined {
  const probe = spawnSync('redis-server', ['--version'], { stdio: 'ignore' })
  return probe.error === undefined ? undefined : `redis-server is not installed (${probe.error.message})`
}

/** True when the test can start a redis-server of its own; else fails under CI, skips elsewhere. */
export function requireRedisServer (t: Test): boolean {
  const reason = redisServerMissing()
  if (reason === undefined) return true
  if (underCI()) t.fail(`CI is set and ${reason}`)
  else t.plan(0, `needs a private redis-server: ${reason}`)
  return false
}

/** Start a private redis-server on a free port; it is killed after the test. */
export async function privateRedis (t: Test): Promise<PrivateRedis> {
  const redis = new PrivateRedis(await freePort())
  t.after(() => redis.kill())
  await redis.start()
  return redis
}
