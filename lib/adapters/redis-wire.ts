import type { Member } from '../protocol.js'

/**
 * Names of every Redis channel and key the adapter uses, all under one prefix
 * so several apps can share one Redis:
 * - `<prefix>:room:<room>`     channel of a room's broadcasts
 * - `<prefix>:user`            channel of every `sendToUser`
 * - `<prefix>:members:<room>`  hash: connection id -> [owner, sub]
 * - `<prefix>:instance:<owner>` liveness key of one instance, with a TTL
 * - `<prefix>:instances`       set of the owners that registered (and did not close cleanly)
 * - `<prefix>:owned:<owner>`   hash: `<room>\n<id>` -> the member's entry, what a survivor announces if the owner dies
 * - `<prefix>:reaped:<owner>`  the claim of the one survivor that announces a dead owner's members
 * - `<prefix>:left`            channel of those announcements
 * - `<prefix>:hmeta:<room>`    hash of a room with history: epoch `e`, latest offset `o`
 * - `<prefix>:history:<room>`  stream of a room's kept envelopes, entry id `<offset>-0`
 */
export class RedisNames {
  readonly roomChannelPrefix: string
  readonly userChannel: string
  readonly leftChannel: string
  readonly instancesKey: string
  readonly #membersPrefix: string
  readonly #instancePrefix: string
  readonly #historyPrefix: string
  readonly #historyMetaPrefix: string
  readonly #keyPrefix: string

  constructor (keyPrefix: string) {
    this.roomChannelPrefix = `${keyPrefix}:room:`
    this.userChannel = `${keyPrefix}:user`
    this.leftChannel = `${keyPrefix}:left`
    this.instancesKey = `${keyPrefix}:instances`
    this.#membersPrefix = `${keyPrefix}:members:`
    this.#instancePrefix = `${keyPrefix}:instance:`
    this.#historyPrefix = `${keyPrefix}:history:`
    this.#historyMetaPrefix = `${keyPrefix}:hmeta:`
    this.#keyPrefix = keyPrefix
  }

  ownedKey (owner: string): string {
    return `${this.#keyPrefix}:owned:${owner}`
  }

  reapedKey (owner: string): string {
    return `${this.#keyPrefix}:reaped:${owner}`
  }

  historyKey (room: string): string {
    return this.#historyPrefix + room
  }

  historyMetaKey (room: string): string {
    return this.#historyMetaPrefix + room
  }

  roomChannel (room: string): string {
    return this.roomChannelPrefix + room
  }

  membersKey (room: string): string {
    return this.#membersPrefix + room
  }

  instanceKey (owner: string): string {
    return this.#instancePrefix + owner
  }
}

/**
 * One pub/sub message is a one-line JSON header, a newline, then the payload
 * exactly as the plugin serialised it. JSON never contains a raw newline, so the
 * first one ends the header; the payload is never parsed on the way through.
 * Room header: `[origin]` or `[origin, except]`; user header: `[origin, sub]`.
 */
export class WireCodec {
  readonly #plainHeader: string
  readonly #ownStart: string
  readonly #origin: string

  constructor (origin: string) {
    this.#origin = origin
    this.#plainHeader = JSON.stringify([origin]) + '\n'
    // `["<origin>"` : what every message this instance published starts with
    this.#ownStart = this.#plainHeader.slice(0, -2)
  }

  room (payload: string, except?: readonly string[]): string {
    if (except === undefined || except.length === 0) return this.#plainHeader + payload
    return JSON.stringify([this.#origin, except]) + '\n' + payload
  }

  user (sub: string, payload: string): string {
    return JSON.stringify([this.#origin, sub]) + '\n' + payload
  }

  /** Whether this instance published `message` (it already delivered it locally). */
  own (message: string): boolean {
    return message.startsWith(this.#ownStart) && (message[this.#ownStart.length] === ']' || message[this.#ownStart.length] === ',')
  }

  /** The header fields and the untouched payload; undefined when the message is not ours to read. */
  decode (message: string): { header: unknown[], payload: string } | undefined {
    const newline = message.indexOf('\n')
    if (newline <= 0) return undefined
    let header: unknown
    try {
      header = JSON.parse(message.slice(0, newline))
    } catch {
      return undefined
    }
    if (!Array.isArray(header) || typeof header[0] !== 'string') return undefined
    return { header, payload: message.slice(newline + 1) }
  }
}

/** The `except` ids of a decoded room header, if any. */
export function exceptOf (header: unknown[]): string[] | undefined {
  const except = header[1]
  if (!Array.isArray(except)) return undefined
  return except.filter((id): id is string => typeof id === 'string')
}

/** A member hash value: which instance (and connection epoch) holds it, and its `sub`. */
export function encodeMember (owner: string, member: Member): string {
  return JSON.stringify([owner, member.sub])
}

export function decodeMember (value: string): { owner: string, sub: string | null } | undefined {
  try {
    const parsed: unknown = JSON.parse(value)
    if (!Array.isArray(parsed) || typeof parsed[0] !== 'string') return undefined
    return { owner: parsed[0], sub: typeof parsed[1] === 'string' ? parsed[1] : null }
  } catch {
    return undefined
  }
}

/**
 * Removes hash fields only while they still hold the value that was found dead,
 * so a member its instance re-registered in the meantime is never removed.
 * KEYS[1] the hash; ARGV field, value, field, value, ...
 */
export const REMOVE_IF_UNCHANGED = `
local removed = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    removed = removed + redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return removed
`
