import type { FastifyBaseLogger } from 'fastify'
import type { HistorySettings, HistoryStore } from '../history/store.js'
import type { Member } from '../protocol.js'

export type { HistoryEntry, HistoryQuery, HistoryRead, HistorySettings, HistorySink, HistoryStore } from '../history/store.js'

/**
 * What the plugin gives an adapter: a way to deliver, on this instance, what
 * other instances published. `payload` is the serialised envelope, sent as is.
 */
export interface AdapterHub {
  /** Unique id of this instance; an adapter ignores what it published itself. */
  readonly instanceId: string
  readonly log: FastifyBaseLogger
  deliverToRoom (room: string, payload: string, except?: readonly string[]): void
  deliverToUser (sub: string, payload: string): void
  /** Members of a room on this instance. */
  localMembers (room: string): Member[]
  /**
   * `member` of another instance is gone without leaving (that instance died):
   * its presence `leave` goes to this instance's members of `room`, if the room has presence here.
   * (Optional for hubs made up in tests; the plugin's has it.)
   */
  memberLost? (room: string, member: Member): void
}

/**
 * Where broadcasts travel. The plugin always delivers to local members itself and
 * calls `publish` so the adapter can carry the message to other instances.
 * Methods may return a promise, so the in-memory default and Redis share this interface.
 */
export interface Adapter {
  attach (hub: AdapterHub): void | Promise<void>
  /** A broadcast made on this instance, already delivered locally. */
  publish (room: string, payload: string, except?: readonly string[]): void | Promise<void>
  /** A `sendToUser` made on this instance, already delivered locally. */
  publishToUser (sub: string, payload: string): void | Promise<void>
  /** `member` joined `room` on this instance; `first` when it is the room's first local member. */
  join (room: string, member: Member, first: boolean): void | Promise<void>
  /** `member` left `room` on this instance; `last` when no local member is left. */
  leave (room: string, member: Member, last: boolean): void | Promise<void>
  /** Members of `room` on every instance. */
  members (room: string): Promise<Member[]>
  /** Whether cross-instance delivery currently works. */
  readonly connected: boolean
  close (): Promise<void>
  /**
   * The store of room history (offsets, epochs, kept messages) that goes with
   * this adapter, so that every instance it connects shares one sequence per
   * room. Called once, when the `history` option is on; an adapter without it
   * cannot be used with `history`.
   */
  historyStore? (settings: HistorySettings): HistoryStore
}
