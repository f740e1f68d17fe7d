import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import { errors } from '../errors.js'
import type { HistorySettings, HistoryStore } from '../history/store.js'
import type { Member } from '../protocol.js'
import type { Adapter, AdapterHub } from './adapter.js'
import { isSequenced, RedisHistoryStore } from './redis-history.js'
import { decodeLeft, encodeLeft, InstanceRegistry } from './redis-instances.js'
import { resolveRedisOptions, type RedisAdapterOptions } from './redis-options.js'
import { decodeMember, encodeMember, exceptOf, REMOVE_IF_UNCHANGED, RedisNames, WireCodec } from './redis-wire.js'

/** How long a join, leave or `members()` waits on Redis before going on without it. */
const WAIT_MS = 1000
const TIMED_OUT = Symbol('timed out')
/** Unanswered commands past which cross-instance copies are dropped rather than queued. */
const MAX_PENDING = 20_000

type Listener = (...args: any[]) => void

async function bounded<T> (promise: Promise<T>, ms = WAIT_MS): Promise<T | typeof TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(resolve, ms, TIMED_OUT)
    timer.unref()
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Carries broadcasts, `sendToUser` and room membership between instances over
 * Redis. Channels: one per room with a local member (subscribed on its first
 * local join, unsubscribed on its last leave) and one for `sendToUser`.
 * Members: a hash per room whose entries name their instance; an instance's
 * entries count only while its liveness key (TTL `instanceTtl`, refreshed every
 * `heartbeatInterval`) exists, so a crashed instance's members disappear within
 * `instanceTtl`, and one survivor announces their leaves (InstanceRegistry). While Redis is unreachable, broadcasts are delivered on this
 * instance only (cross-instance copies are dropped, not queued) and
 * `connected` is false; on reconnect the channels and members are registered
 * again.
 */
export class RedisAdapter implements Adapter {
  /** The connection that publishes and keeps members (made in `attach` from `url` when none was given). */
  client!: Redis
  /** The connection in subscriber mode. */
  subscriber!: Redis
  readonly keyPrefix: string
  readonly heartbeatInterval: number
  readonly instanceTtl: number
  readonly #ownsClient: boolean
  readonly #ownsSubscriber: boolean
  /** Where the adapter connects when no `client` was given. */
  readonly url: string
  readonly #names: RedisNames
  /** what survivors need to announce this instance's members if it dies */
  readonly #instances: InstanceRegistry
  /** Rooms with a member on this instance: the room channels wanted. */
  readonly #rooms = new Set<string>()
  /** Channels SUBSCRIBE was sent for and UNSUBSCRIBE was not, as far as this side knows. */
  #subscribed = new Set<string>()
  readonly #listeners: Array<[Redis, string, Listener]> = []
  #hub: AdapterHub | undefined
  #history: RedisHistoryStore | undefined
  #log: FastifyBaseLogger | undefined
  #codec: WireCodec | undefined
  /** `<instanceId>.<epoch>`: the epoch changes on every reconnect, so entries left from before it expire with the old key. */
  #owner = ''
  #epoch = 0
  #registered = false
  #subscriberSynced = false
  #subscriberGeneration = 0
  #wasConnected = false
  #outage = false
  #closed = false
  #dropped = 0
  #backlogged = false
  #heartbeat: NodeJS.Timeout | undefined
  #connecting: { resolve: () => void, reject: (err: Error) => void } | undefined

  constructor (options: RedisAdapterOptions = {}) {
    const { url, client, subscriber, keyPrefix, heartbeatInterval, instanceTtl } = resolveRedisOptions(options)
    this.heartbeatInterval = heartbeatInterval
    this.instanceTtl = instanceTtl
    this.keyPrefix = keyPrefix
    this.#names = new RedisNames(keyPrefix)
    this.#instances = new InstanceRegistry(this.#names, instanceTtl)

    this.url = url
    this.#ownsClient = client === undefined
    if (client !== undefined) this.client = client
    this.#ownsSubscriber = subscriber === undefined
    if (subscriber !== undefined) this.subscriber = subscriber
  }

  /** Open the connections not given: ioredis is an optional peer, loaded only here. */
  async #openConnections (): Promise<void> {
    if (this.#ownsClient) {
      let Ioredis: typeof Redis
      try {
        Ioredis = (await import('ioredis')).Redis
      } catch (err) {
        throw new errors.FST_REALTIME_MISSING_PEER('fastify-realtime/redis', 'ioredis', { cause: err })
      }
      this.client = new Ioredis(this.url, { lazyConnect: true })
    }
    if (this.#ownsSubscriber) this.subscriber = this.client.duplicate({ lazyConnect: true })
  }

  /** Whether cross-instance delivery works now: both connections ready and subscribed. */
  get connected (): boolean {
    return !this.#closed && this.#registered && this.#subscriberSynced && this.client !== undefined &&
      this.client.status === 'ready' && this.subscriber.status === 'ready' &&
      this.client.commandQueue.length < MAX_PENDING
  }

  /** Cross-instance copies dropped because Redis was unreachable (they were delivered locally). */
  get dropped (): number {
    return this.#dropped
  }

  async attach (hub: AdapterHub): Promise<void> {
    if (this.#hub !== undefined) throw new errors.FST_REALTIME_ADAPTER_IN_USE('Redis')
    this.#hub = hub
    await this.#openConnections()
    this.#log = hub.log
    this.#codec = new WireCodec(hub.instanceId)
    this.#owner = `${hub.instanceId}.${this.#epoch}`

    const connected = new Promise<void>((resolve, reject) => { this.#connecting = { resolve, reject } })
    this.#on(this.client, 'ready', () => { this.#clientReady() })
    this.#on(this.client, 'close', () => { this.#update() })
    this.#on(this.client, 'end', () => { this.#lost(new Error('connection closed')) })
    this.#on(this.client, 'error', (err: Error) => { this.#lost(err) })
    this.#on(this.subscriber, 'ready', () => { this.#subscriberReady() })
    this.#on(this.subscriber, 'close', () => {
      this.#subscriberSynced = false
      this.#subscriberGeneration++ // a resubscribe still in flight no longer counts
      this.#update()
    })
    this.#on(this.subscriber, 'end', () => { this.#lost(new Error('connection closed')) })
    this.#on(this.subscriber, 'error', (err: Error) => { this.#lost(err) })
    this.#on(this.subscriber, 'message', (channel: string, message: string) => { this.#receive(channel, message) })

    for (const redis of [this.client, this.subscriber]) {
      if (redis.status === 'end') this.#lost(new Error('the connection passed in is closed'))
      else if (redis.status === 'wait') redis.connect().catch(() => {}) // failures arrive as 'error' events
      else if (redis.status === 'ready') {
        if (redis === this.client) this.#clientReady()
        else this.#subscriberReady()
      }
    }
    try {
      await connected
    } catch (err) {
      await this.close()
      throw new errors.FST_REALTIME_ADAPTER_UNAVAILABLE('Redis', (err as Error).message, { cause: err })
    }
    this.#heartbeat = setInterval(() => { this.#beat() }, this.heartbeatInterval)
    this.#heartbeat.unref()
  }

  publish (room: string, payload: string, except?: readonly string[]): void {
    if (this.#canPublish()) this.client.publish(this.#names.roomChannel(room), this.#codec!.room(payload, except)).catch(this.#ignore)
  }

  publishToUser (sub: string, payload: string): void {
    if (this.#canPublish()) this.client.publish(this.#names.userChannel, this.#codec!.user(sub, payload)).catch(this.#ignore)
  }

  join (room: string, member: Member, first: boolean): Promise<void> | undefined {
    if (first) this.#rooms.add(room)
    const work: Array<Promise<unknown>> = []
    // while a connection is down, its part is redone on reconnect
    if (this.#ready(this.client)) {
      work.push(this.client.hset(this.#names.membersKey(room), member.id, encodeMember(this.#owner, member)))
      work.push(this.#instances.joined(this.client, this.#owner, room, member, first))
    }
    if (first && this.#ready(this.subscriber)) {
      const channel = this.#names.roomChannel(room)
      this.#subscribed.add(channel)
      work.push(this.subscriber.subscribe(channel))
    }
    return this.#settle(work)
  }

  leave (room: string, member: Member, last: boolean): Promise<void> | undefined {
    if (last) this.#rooms.delete(room)
    const work: Array<Promise<unknown>> = []
    if (this.#ready(this.client)) {
      work.push(this.client.hdel(this.#names.membersKey(room), member.id))
      work.push(this.#instances.left(this.client, this.#owner, room, member))
    }
    if (last && this.#ready(this.subscriber)) {
      const channel = this.#names.roomChannel(room)
      this.#subscribed.delete(channel)
      work.push(this.subscriber.unsubscribe(channel))
    }
    return this.#settle(work)
  }

  /**
   * Members on this instance, plus those Redis lists for live instances; entries
   * of instances whose liveness key expired are left out and removed. Without
   * Redis (or after a second's wait) only this instance's members are returned.
   */
  async members (room: string): Promise<Member[]> {
    const hub = this.#hub
    if (hub === undefined) return []
    const local = hub.localMembers(room)
    if (!this.#ready(this.client)) return local
    const key = this.#names.membersKey(room)
    try {
      const entries = await bounded(this.client.hgetall(key))
      if (entries === TIMED_OUT) return hub.localMembers(room)
      const self = `${hub.instanceId}.`
      const remote: Array<{ id: string, value: string, owner: string, sub: string | null }> = []
      const owners = new Set<string>()
      const stale: string[] = []
      for (const [id, value] of Object.entries(entries)) {
        const decoded = decodeMember(value)
        if (decoded === undefined) continue
        if (decoded.owner.startsWith(self)) {
          // ours come from the hub; an entry of an earlier epoch is a member that left while Redis was away
          if (decoded.owner !== this.#owner) stale.push(id, value)
          continue
        }
        remote.push({ id, value, ...decoded })
        owners.add(decoded.owner)
      }
      if (remote.length === 0) {
        this.#remove(key, stale)
        return hub.localMembers(room)
      }
      const ownerList = [...owners]
      const alive = await bounded(this.client.mget(ownerList.map((owner) => this.#names.instanceKey(owner))))
      if (alive === TIMED_OUT) return hub.localMembers(room)
      const live = new Set(ownerList.filter((_, i) => alive[i] !== null))
      const out = hub.localMembers(room)
      for (const entry of remote) {
        if (live.has(entry.owner)) out.push({ id: entry.id, sub: entry.sub })
        else stale.push(entry.id, entry.value)
      }
      this.#remove(key, stale)
      return out
    } catch (err) {
      this.#ignore(err)
      return hub.localMembers(room)
    }
  }

  /**
   * Room history in Redis (streams, one counter and epoch per room), shared by
   * every instance on this Redis and kept across restarts.
   */
  historyStore (settings: HistorySettings): HistoryStore {
    if (this.#history !== undefined) throw new errors.FST_REALTIME_ADAPTER_IN_USE('Redis')
    const adapter = this
    const log = (): FastifyBaseLogger | undefined => this.#log
    this.#history = new RedisHistoryStore({
      get client () { return adapter.client },
      get connected () { return adapter.connected },
      get log () { return log() }
    }, this.#names, settings)
    return this.#history
  }

  /** Stops the heartbeat, removes this instance's liveness key, and closes the connections the adapter opened. */
  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#heartbeat)
    this.#heartbeat = undefined
    this.#connecting?.reject(new Error('adapter closed'))
    // attach failed before the connections were made (ioredis missing)
    if (this.client === undefined || this.subscriber === undefined) return
    const work: Array<Promise<unknown>> = []
    // without its liveness key, this instance's leftover entries stop counting at once
    if (this.#registered && this.client.status === 'ready') {
      work.push(this.client.del(this.#names.instanceKey(this.#owner)), this.#instances.unregister(this.client, this.#owner))
    }
    if (!this.#ownsSubscriber && this.subscriber.status === 'ready' && this.#subscribed.size > 0) {
      work.push(this.subscriber.unsubscribe(...this.#subscribed))
    }
    await bounded(Promise.allSettled(work))
    this.#subscribed.clear()
    this.#rooms.clear()
    for (const [redis, event, listener] of this.#listeners) {
      // a connection we close keeps a silent error listener: ioredis prints unheard errors
      if ((redis === this.client && this.#ownsClient) || (redis === this.subscriber && this.#ownsSubscriber)) {
        if (event === 'error') continue
      }
      redis.off(event, listener)
    }
    this.#listeners.length = 0
    await Promise.all([
      this.#ownsClient ? this.#shut(this.client) : undefined,
      this.#ownsSubscriber ? this.#shut(this.subscriber) : undefined
    ])
  }

  #on (redis: Redis, event: string, listener: Listener): void {
    redis.on(event, listener)
    this.#listeners.push([redis, event, listener])
  }

  /**
   * Whether a cross-instance copy can go out now. Not while the connection is
   * down (nothing is queued for later), nor while Redis leaves MAX_PENDING
   * commands unanswered (a hung server must not grow memory without bound).
   */
  #canPublish (): boolean {
    if (!this.#ready(this.client)) {
      this.#dropped++
      return false
    }
    if (this.client.commandQueue.length < MAX_PENDING) {
      this.#backlogged = false
      return true
    }
    this.#dropped++
    if (!this.#backlogged) {
      this.#backlogged = true
      this.#log?.warn(`fastify-realtime: Redis has not answered ${MAX_PENDING} commands; broadcasts reach this instance only until it catches up`)
    }
    return false
  }

  #ready (redis: Redis): boolean {
    return !this.#closed && redis.status === 'ready'
  }

  readonly #ignore = (err: unknown): void => {
    this.#log?.debug({ err }, 'fastify-realtime: Redis command failed')
  }

  /** Remove member entries found dead (`fieldsAndValues`: id, value, ...), unless rewritten meanwhile. */
  #remove (key: string, fieldsAndValues: string[]): void {
    if (fieldsAndValues.length > 0) this.client.eval(REMOVE_IF_UNCHANGED, 1, key, ...fieldsAndValues).catch(this.#ignore)
  }

  #settle (work: Array<Promise<unknown>>): Promise<void> | undefined {
    if (work.length === 0) return undefined
    // a join or leave never fails or hangs because of Redis: local state already changed
    return bounded(Promise.all(work)).then(() => {}, this.#ignore)
  }

  /** (Re)register this instance: a fresh liveness key, every local member, and the old epoch's key removed. */
  #clientReady (): void {
    if (this.#closed || this.#hub === undefined) return
    const previous = this.#registered ? this.#owner : undefined
    if (previous !== undefined) this.#owner = `${this.#hub.instanceId}.${++this.#epoch}`
    const pipeline = this.client.pipeline()
    pipeline.set(this.#names.instanceKey(this.#owner), '1', 'PX', this.instanceTtl)
    const owned = []
    for (const room of this.#rooms) {
      const fields: string[] = []
      for (const member of this.#hub.localMembers(room)) {
        fields.push(member.id, encodeMember(this.#owner, member))
        owned.push({ room, member })
      }
      if (fields.length > 0) pipeline.hset(this.#names.membersKey(room), ...fields)
    }
    this.#instances.register(pipeline, this.#owner, owned, previous)
    this.#instances.refresh(pipeline, this.#owner, this.#rooms)
    if (previous !== undefined) pipeline.del(this.#names.instanceKey(previous))
    this.#registered = true
    pipeline.exec().catch(this.#ignore)
    this.#update()
  }

  /** Subscribe to every wanted channel (ioredis resubscribes what it knew; this also covers joins made offline) and drop stale ones. */
  #subscriberReady (): void {
    if (this.#closed) return
    const generation = ++this.#subscriberGeneration
    const wanted = new Set([this.#names.userChannel, this.#names.leftChannel])
    for (const room of this.#rooms) wanted.add(this.#names.roomChannel(room))
    const stale = [...this.#subscribed].filter((channel) => !wanted.has(channel))
    this.#subscribed = wanted
    const work: Array<Promise<unknown>> = [this.subscriber.subscribe(...wanted)]
    if (stale.length > 0) work.push(this.subscriber.unsubscribe(...stale))
    Promise.all(work).then(() => {
      if (generation !== this.#subscriberGeneration) return
      this.#subscriberSynced = true
      this.#update()
    }, this.#ignore)
  }

  #receive (channel: string, message: string): void {
    const hub = this.#hub
    const codec = this.#codec
    if (hub === undefined || codec === undefined || this.#closed) return
    const roomPrefix = this.#names.roomChannelPrefix
    const forRoom = channel.startsWith(roomPrefix)
    const forLeft = channel === this.#names.leftChannel
    if (!forRoom && !forLeft && channel !== this.#names.userChannel) return // someone else's channel on a shared subscriber
    if (forRoom && this.#history !== undefined && isSequenced(message)) {
      // a message of a room with history: every instance delivers it from here, the one that broadcast it too
      this.#history.receive(channel.slice(roomPrefix.length), message)
      return
    }
    if (codec.own(message)) return // delivered locally when it was published
    const decoded = codec.decode(message)
    if (decoded === undefined) {
      this.#log?.debug({ channel }, 'fastify-realtime: ignored a malformed Redis message')
      return
    }
    if (forRoom) {
      hub.deliverToRoom(channel.slice(roomPrefix.length), decoded.payload, exceptOf(decoded.header))
    } else if (forLeft) {
      const left = decodeLeft(decoded.payload)
      if (left !== undefined) hub.memberLost?.(left.room, left.member)
    } else if (typeof decoded.header[1] === 'string') {
      hub.deliverToUser(decoded.header[1], decoded.payload)
    }
  }

  /** Refresh the liveness key and every TTL, then look for dead instances to announce. */
  #beat (): void {
    if (!this.#registered || !this.#ready(this.client)) return
    const owner = this.#owner
    const pipeline = this.client.pipeline().set(this.#names.instanceKey(owner), '1', 'PX', this.instanceTtl, 'XX')
    this.#instances.refresh(pipeline, owner, this.#rooms)
    pipeline.exec().then((results) => {
      // registered again meanwhile (a reconnect, to a Redis that may have lost its data): nothing to tell
      if (owner !== this.#owner || this.#closed) return
      if (results?.[0]?.[1] !== null) {
        this.#reapDead()
        return
      }
      // the key had lapsed (a stall longer than instanceTtl): survivors may have announced this instance gone
      this.#log?.warn('fastify-realtime: this instance\'s Redis liveness key had expired (the event loop blocked that long, or Redis lost its data); registering its members again')
      this.#clientReady()
    }, this.#ignore)
  }

  /** Announce, once across instances, the members of instances that died without closing. */
  #reapDead (): void {
    const hub = this.#hub
    const codec = this.#codec
    if (hub === undefined || codec === undefined) return
    this.#instances.reap(this.client, this.#owner, (room, member) => codec.room(encodeLeft(room, member))).then((announced) => {
      // this instance's own members hear it here: it ignores what it published
      for (const { room, member } of announced) hub.memberLost?.(room, member)
    }, this.#ignore)
  }

  /** A connection error or end: fail a pending attach, else note the outage. */
  #lost (err: Error): void {
    if (this.#connecting !== undefined && !this.#wasConnected) {
      const { reject } = this.#connecting
      this.#connecting = undefined
      reject(err)
      return
    }
    this.#log?.debug({ err }, 'fastify-realtime: Redis connection error')
    this.#update()
  }

  /** Log each change of `connected` once: a warning when Redis goes away, info when it is back. */
  #update (): void {
    const now = this.connected
    if (now === this.#wasConnected) return
    this.#wasConnected = now
    if (now) {
      if (this.#connecting !== undefined) {
        this.#connecting.resolve()
        this.#connecting = undefined
      }
      if (this.#outage) {
        this.#log?.info('fastify-realtime: Redis is back; cross-instance delivery resumed')
        this.#history?.reconnected()
      }
      return
    }
    if (this.#closed) return
    this.#outage = true
    this.#log?.warn('fastify-realtime: Redis is unreachable; broadcasts reach this instance only until it is back')
  }

  async #shut (redis: Redis): Promise<void> {
    if (redis.status === 'end') return
    if (redis.status === 'ready') {
      try {
        await bounded(redis.quit())
      } catch {}
    }
    if ((redis.status as string) === 'end') return
    // quit timed out or could not run: cut the socket and stop reconnecting
    const ended = new Promise<void>((resolve) => redis.once('end', resolve))
    redis.disconnect()
    await bounded(ended)
  }
}

/**
 * The Redis adapter: rooms, `sendToUser`, `members()` and presence across instances.
 * @example
 * import { redisAdapter } from 'fastify-realtime/redis'
 * await app.register(realtime, { adapter: redisAdapter({ url: process.env.REDIS_URL }), routes })
 */
export function redisAdapter (options: RedisAdapterOptions = {}): RedisAdapter {
  return new RedisAdapter(options)
}

export default redisAdapter
export type { RedisAdapterOptions }
