// The one interface the in-memory and the Redis history stores share, so the
// hub does not care which one keeps a room's messages (SPEC section 10).
import { randomBytes } from 'node:crypto'

/** Most messages a room may keep, and the shortest time it keeps them (SPEC section 10). */
export const MAX_HISTORY_SIZE = 10_000
export const MIN_HISTORY_TTL = 1000

/** `history` after defaults and validation. */
export interface HistorySettings {
  /** messages kept per room */
  readonly size: number
  /** ms a message is kept at most */
  readonly ttl: number
  /** which rooms keep history */
  readonly rooms: (room: string) => boolean
}

/** One kept message: its offset, the envelope as sent (offset included), and who a live copy skipped. */
export interface HistoryEntry {
  offset: number
  payload: string
  except?: readonly string[]
}

/** What a read returns: the room's epoch and latest offset, and the kept messages asked for, oldest first. */
export interface HistoryRead {
  epoch: string
  offset: number
  entries: HistoryEntry[]
}

/**
 * What to read: the messages after offset `after` (at most `limit`), or the
 * last `last` kept (0: none, only the epoch and the latest offset).
 */
export type HistoryQuery = { after: number, limit: number } | { last: number }

/**
 * What a store tells the plugin. `sequenced` is every message of a room with
 * history, in offset order per room, from every instance (this one included):
 * the store decides the offset, the plugin delivers it to local members.
 */
export interface HistorySink {
  sequenced (room: string, epoch: string, offset: number, payload: string, except?: readonly string[]): void
  /** A message the store accepted but then failed to keep (`payload` has no offset): delivered locally only. */
  unsequenced (room: string, payload: string, except?: readonly string[]): void
  /** The store was unreachable and is back: local members may have missed messages. */
  reconnected (): void
  /** Whether a connection of this instance is in `room` (a store keeps such a room's counter). */
  watching (room: string): boolean
}

/**
 * Where rooms' offsets, epochs and messages live. The in-memory store answers
 * at once; the Redis one answers later, and delivers through `sequenced` when
 * Redis has published the message to every instance.
 */
export interface HistoryStore {
  attach (sink: HistorySink): void
  /** Whether the store can be reached now. */
  readonly available: boolean
  /**
   * Give the next offset of `room` to the envelope `body` (a serialised envelope
   * without its closing brace), keep it, and have it delivered through
   * `sequenced`. False, and nothing done, when the store cannot be reached.
   */
  append (room: string, body: string, except?: readonly string[]): boolean
  /** Read a room's state and messages; a new room gets its epoch here. Rejects (or throws) when the store cannot be reached. */
  read (room: string, query: HistoryQuery): HistoryRead | Promise<HistoryRead>
  close (): void | Promise<void>
}

/** An adapter that keeps history (the in-memory default and the Redis adapter do). */
export interface HistoryCapable {
  historyStore (settings: HistorySettings): HistoryStore
}

/**
 * A new epoch: the time it was made (13 digits of ms, so a later epoch of the
 * same store sorts after an earlier one) and 8 random characters.
 */
export function newEpoch (now = Date.now()): string {
  return String(now).padStart(13, '0') + '-' + randomBytes(6).toString('base64url')
}

/** Random characters for an epoch made elsewhere (in Redis, with Redis's clock). */
export function epochSuffix (): string {
  return randomBytes(6).toString('base64url')
}

/** Whether epoch `a` was made after epoch `b` (both from newEpoch, or the same format). */
export function isNewerEpoch (a: string, b: string): boolean {
  return a > b
}

/** The envelope `body` (no closing brace) with its offset: `{"type":..,"room":..,"data":..,"offset":42}`. */
export function withOffset (body: string, offset: number): string {
  return body + ',"offset":' + offset + '}'
}
