import { createHash, randomBytes } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import type { HistoryEntry, HistoryQuery, HistoryRead, HistorySettings, HistorySink, HistoryStore } from '../history/store.js'
import type { RedisNames } from './redis-wire.js'

/**
 * How long a room's counter and epoch live in Redis after its last message or
 * join (at least its `ttl`): past it, an idle room's next message starts a new epoch.
 */
export const COUNTER_IDLE_MS = 24 * 60 * 60 * 1000

/** Timestamp of now from Redis's own clock, in ms, so every instance agrees on ages. */
const NOW = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
`

/** The room's epoch, made (with an empty stream and counter 0) when the room has none. */
const EPOCH = `
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = string.format('%013d', now) .. '-' .. ARGV[4]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', epoch, 'o', 0)
end
`

/**
 * Append one message: the room's next offset (HINCRBY on the counter), the
 * envelope with it as the stream entry `<offset>-0` (XADD, MAXLEN ~ size),
 * every 32nd time expired entries at the head trimmed (XTRIM MINID), then PUBLISH on the room
 * channel, all in one script, so offsets reach every subscriber in order.
 * Published: `[0,"<epoch>",<offset>(,<except>)]\n<envelope>`.
 * KEYS: counter hash, stream. ARGV: body, size, ttl, epoch suffix, channel, except JSON or '', counter ttl.
 */
const APPEND = NOW + EPOCH + `
local offset = redis.call('HINCRBY', KEYS[1], 'o', 1)
local id = string.format('%d', offset)
local payload = ARGV[1] .. ',"offset":' .. id .. '}'
if ARGV[6] == '' then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], id .. '-0', 'p', payload, 't', now)
else
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], id .. '-0', 'p', payload, 't', now, 'x', ARGV[6])
end
-- expired entries at the head go every 32nd message (reads skip them anyway; size bounds the stream)
if offset % 32 == 0 then
  local cutoff = now - tonumber(ARGV[3])
  local head = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 64)
  local keep = nil
  for i = 1, #head do
    if tonumber(head[i][2][4]) >= cutoff then
      keep = head[i][1]
      break
    end
  end
  -- all 64 expired: drop them but the last (the next trim goes on from there)
  if keep == nil and #head > 0 then keep = head[#head][1] end
  if keep then redis.call('XTRIM', KEYS[2], 'MINID', keep) end
end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
local header = '[0,"' .. epoch .. '",' .. id
if ARGV[6] ~= '' then header = header .. ',' .. ARGV[6] end
redis.call('PUBLISH', ARGV[5], header .. ']\\n' .. payload)
return offset
`

/**
 * Read a room: its epoch, latest offset, and the entries asked for that are
 * younger than ttl, oldest first, flat: epoch, offset, then id, envelope, except ('' for none) per entry.
 * KEYS: counter hash, stream. ARGV: 'after' or 'last', n, limit, epoch suffix, ttl, counter ttl.
 */
const READ = NOW + EPOCH + `
redis.call('PEXPIRE', KEYS[1], ARGV[6])
local offset = tonumber(redis.call('HGET', KEYS[1], 'o'))
local cutoff = now - tonumber(ARGV[5])
local out = { epoch, string.format('%d', offset) }
local function push (entry)
  local fields = entry[2]
  local p, t, x = nil, 0, ''
  for j = 1, #fields, 2 do
    if fields[j] == 'p' then p = fields[j + 1] elseif fields[j] == 't' then t = tonumber(fields[j + 1]) elseif fields[j] == 'x' then x = fields[j + 1] end
  end
  if p and t >= cutoff then
    out[#out + 1] = entry[1]
    out[#out + 1] = p
    out[#out + 1] = x
  end
end
if ARGV[1] == 'after' then
  local start = tonumber(ARGV[2]) + 1
  if start <= offset then
    local entries = redis.call('XRANGE', KEYS[2], string.format('%d', start), '+', 'COUNT', ARGV[3])
    for i = 1, #entries do push(entries[i]) end
  end
else
  local n = tonumber(ARGV[2])
  if n > 0 then
    local entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', n)
    for i = #entries, 1, -1 do push(entries[i]) end
  end
end
return out
`

interface Script {
  lua: string
  sha: string
}

function script (lua: string): Script {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') }
}

const APPEND_SCRIPT = script(APPEND)
const READ_SCRIPT = script(READ)

/** What the store needs of the adapter it belongs to. */
export interface RedisHistoryHost {
  readonly client: Redis
  /** both connections ready and subscribed */
  readonly connected: boolean
  readonly log: FastifyBaseLogger | undefined
}

/** Whether a room-channel message is a sequenced one (its header starts `[0,`). */
export function isSequenced (message: string): boolean {
  return message.startsWith('[0,"')
}

/**
 * Room history in Redis, shared by every instance on it: per room a hash with
 * the epoch and the counter (`<prefix>:hmeta:<room>`) and a stream of the kept
 * envelopes (`<prefix>:history:<room>`, entry id `<offset>-0`). A broadcast is
 * sequenced and published by one script; every instance, the one that
 * broadcast included, delivers it when it arrives on the room channel, so all
 * deliver in offset order. While the adapter is not connected, nothing is appended.
 */
export class RedisHistoryStore implements HistoryStore {
  readonly #host: RedisHistoryHost
  readonly #names: RedisNames
  readonly #settings: HistorySettings
  readonly #counterTtl: number
  /** random per store; a counter after it makes each new epoch's suffix */
  readonly #suffixBase = randomBytes(4).toString('base64url')
  #suffixes = 0
  #sink: HistorySink | undefined
  #closed = false

  constructor (host: RedisHistoryHost, names: RedisNames, settings: HistorySettings) {
    this.#host = host
    this.#names = names
    this.#settings = settings
    this.#counterTtl = Math.max(COUNTER_IDLE_MS, settings.ttl)
  }

  attach (sink: HistorySink): void {
    this.#sink = sink
  }

  get available (): boolean {
    return !this.#closed && this.#host.connected
  }

  append (room: string, body: string, except?: readonly string[]): boolean {
    if (!this.available) return false
    const { size, ttl } = this.#settings
    this.#run(APPEND_SCRIPT, this.#names.historyMetaKey(room), this.#names.historyKey(room),
      [body, size, ttl, this.#suffix(), this.#names.roomChannel(room), except === undefined ? '' : JSON.stringify(except), this.#counterTtl]
    ).catch((err: unknown) => {
      // never kept, never published: local members still get it, without an offset
      this.#host.log?.warn({ err, room }, 'fastify-realtime: a broadcast could not be kept in Redis')
      this.#sink?.unsequenced(room, body + '}', except)
    })
    return true
  }

  async read (room: string, query: HistoryQuery): Promise<HistoryRead> {
    if (!this.available) throw new Error('Redis is not connected')
    const args = 'after' in query ? ['after', query.after, query.limit] : ['last', query.last, 0]
    const reply = await this.#run(READ_SCRIPT, this.#names.historyMetaKey(room), this.#names.historyKey(room),
      [...args, this.#suffix(), this.#settings.ttl, this.#counterTtl]) as string[]
    const entries: HistoryEntry[] = []
    for (let i = 2; i + 2 < reply.length; i += 3) {
      const id = reply[i]
      const except = reply[i + 2]
      const entry: HistoryEntry = { offset: Number(id.slice(0, id.indexOf('-'))), payload: reply[i + 1] }
      if (except !== '') entry.except = JSON.parse(except) as string[]
      entries.push(entry)
    }
    return { epoch: reply[0], offset: Number(reply[1]), entries }
  }

  /** A sequenced message arrived on `room`'s channel (from any instance, this one included). */
  receive (room: string, message: string): void {
    const sink = this.#sink
    if (sink === undefined || this.#closed) return
    const newline = message.indexOf('\n')
    let header: unknown
    try {
      header = JSON.parse(message.slice(0, newline))
    } catch {
      return
    }
    const [, epoch, offset, except] = header as [0, unknown, unknown, unknown]
    if (typeof epoch !== 'string' || !Number.isSafeInteger(offset)) return
    sink.sequenced(room, epoch, offset as number, message.slice(newline + 1), Array.isArray(except) ? except as string[] : undefined)
  }

  /** The adapter is connected again after an outage: members catch up from the streams. */
  reconnected (): void {
    if (!this.#closed) this.#sink?.reconnected()
  }

  close (): void {
    this.#closed = true
    this.#sink = undefined
  }

  #suffix (): string {
    return this.#suffixBase + (++this.#suffixes).toString(36)
  }

  /** EVALSHA, and EVAL once when Redis does not have the script (first use, or after a restart). */
  async #run (s: Script, meta: string, stream: string, args: Array<string | number>): Promise<unknown> {
    const client = this.#host.client
    try {
      return await client.evalsha(s.sha, 2, meta, stream, ...args)
    } catch (err) {
      if (!String((err as Error)?.message).startsWith('NOSCRIPT')) throw err
      return await client.eval(s.lua, 2, meta, stream, ...args)
    }
  }
}
