import type { ChainableCommander, Redis } from 'ioredis'
import type { Member } from '../protocol.js'
import { decodeMember, encodeMember, REMOVE_IF_UNCHANGED, type RedisNames } from './redis-wire.js'

/** One member an instance holds, and its room. */
export interface OwnedMember {
  room: string
  member: Member
}

/** Field of `owned:<owner>`: room names hold no control character, ids no newline. */
function ownedField (room: string, id: string): string {
  return `${room}\n${id}`
}

/**
 * What outlives a crashed instance, and how survivors clean it up (the Redis
 * adapter's part of stale presence):
 * - every member hash and the instance's own records carry a TTL (`keep`, three
 *   liveness TTLs) that live instances refresh on each heartbeat, so nothing an
 *   instance wrote outlives every instance by more than that;
 * - each instance lists itself in `instances` and its members in `owned:<owner>`;
 *   on every heartbeat a live instance looks for listed instances whose liveness
 *   key lapsed, and the one that wins `reaped:<owner>` (SET NX) removes that
 *   instance's member entries and publishes each member's leave once, on the
 *   `left` channel every instance hears.
 */
export class InstanceRegistry {
  readonly #names: RedisNames
  /** ms a record lives without a refresh */
  readonly keep: number
  #reaping = false

  constructor (names: RedisNames, instanceTtl: number) {
    this.#names = names
    this.keep = 3 * instanceTtl
  }

  /** Record a join of `owner` (`first`: the room's first local member, so its hash gets a TTL now). */
  joined (client: Redis, owner: string, room: string, member: Member, first: boolean): Promise<unknown> {
    const owned = this.#names.ownedKey(owner)
    const pipeline = client.pipeline().hset(owned, ownedField(room, member.id), encodeMember(owner, member)).pexpire(owned, this.keep)
    if (first) pipeline.pexpire(this.#names.membersKey(room), this.keep)
    return pipeline.exec()
  }

  left (client: Redis, owner: string, room: string, member: Member): Promise<unknown> {
    return client.hdel(this.#names.ownedKey(owner), ownedField(room, member.id))
  }

  /**
   * Add to `pipeline` the registration of `owner` with its members; a `previous`
   * owner of this instance (before a reconnect) is unlisted first, so no survivor
   * announces members that are still here.
   */
  register (pipeline: ChainableCommander, owner: string, members: OwnedMember[], previous?: string): void {
    const { instancesKey } = this.#names
    if (previous !== undefined) pipeline.srem(instancesKey, previous).del(this.#names.ownedKey(previous))
    pipeline.sadd(instancesKey, owner).pexpire(instancesKey, this.keep)
    const owned = this.#names.ownedKey(owner)
    pipeline.del(owned)
    const fields: string[] = []
    for (const { room, member } of members) fields.push(ownedField(room, member.id), encodeMember(owner, member))
    if (fields.length > 0) pipeline.hset(owned, ...fields).pexpire(owned, this.keep)
  }

  /** Add to `pipeline` the TTL refresh of everything `owner` keeps (`rooms`: those with a local member). */
  refresh (pipeline: ChainableCommander, owner: string, rooms: Iterable<string>): void {
    pipeline.sadd(this.#names.instancesKey, owner).pexpire(this.#names.instancesKey, this.keep)
    pipeline.pexpire(this.#names.ownedKey(owner), this.keep)
    for (const room of rooms) pipeline.pexpire(this.#names.membersKey(room), this.keep)
  }

  /** A clean close: unlisted, nothing left to announce (its members left one by one). */
  unregister (client: Redis, owner: string): Promise<unknown> {
    return client.pipeline().srem(this.#names.instancesKey, owner).del(this.#names.ownedKey(owner)).exec()
  }

  /**
   * Find listed instances whose liveness key lapsed; for each one this instance
   * claims first, remove its member entries and publish each leave (`encode`
   * makes the `left` channel message). Returns the members announced.
   */
  async reap (client: Redis, self: string, encode: (room: string, member: Member) => string): Promise<OwnedMember[]> {
    if (this.#reaping) return []
    this.#reaping = true
    try {
      const others = (await client.smembers(this.#names.instancesKey)).filter((owner) => owner !== self)
      if (others.length === 0) return []
      const alive = await client.mget(others.map((owner) => this.#names.instanceKey(owner)))
      const announced: OwnedMember[] = []
      for (let i = 0; i < others.length; i++) {
        if (alive[i] === null) announced.push(...await this.#reapOne(client, self, others[i], encode))
      }
      return announced
    } finally {
      this.#reaping = false
    }
  }

  async #reapOne (client: Redis, self: string, dead: string, encode: (room: string, member: Member) => string): Promise<OwnedMember[]> {
    // exactly one survivor announces: the one whose claim lands
    if (await client.set(this.#names.reapedKey(dead), self, 'PX', this.keep, 'NX') !== 'OK') return []
    const entries = await client.hgetall(this.#names.ownedKey(dead))
    const byRoom = new Map<string, string[]>()
    const members: OwnedMember[] = []
    for (const [field, value] of Object.entries(entries)) {
      const newline = field.indexOf('\n')
      if (newline === -1) continue
      const room = field.slice(0, newline)
      const id = field.slice(newline + 1)
      const decoded = decodeMember(value)
      if (decoded === undefined) continue
      members.push({ room, member: { id, sub: decoded.sub } })
      let list = byRoom.get(room)
      if (list === undefined) byRoom.set(room, list = [])
      list.push(id, value)
    }
    const pipeline = client.pipeline()
    for (const [room, fieldsAndValues] of byRoom) pipeline.eval(REMOVE_IF_UNCHANGED, 1, this.#names.membersKey(room), ...fieldsAndValues)
    for (const { room, member } of members) pipeline.publish(this.#names.leftChannel, encode(room, member))
    pipeline.del(this.#names.ownedKey(dead)).srem(this.#names.instancesKey, dead)
    await pipeline.exec()
    return members
  }
}

/** The `left` channel's payload: `[room, id, sub]`. */
export function encodeLeft (room: string, member: Member): string {
  return JSON.stringify([room, member.id, member.sub])
}

export function decodeLeft (payload: string): OwnedMember | undefined {
  try {
    const parsed: unknown = JSON.parse(payload)
    if (!Array.isArray(parsed) || typeof parsed[0] !== 'string' || typeof parsed[1] !== 'string') return undefined
    return { room: parsed[0], member: { id: parsed[1], sub: typeof parsed[2] === 'string' ? parsed[2] : null } }
  } catch {
    return undefined
  }
}
