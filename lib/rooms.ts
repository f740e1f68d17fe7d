import { kRooms } from './symbols.js'

/** A room member keeps its own rooms: no room, one room's name, or a Set of two or more (no Set and no map entry for the usual one room). */
export interface RoomMember {
  [kRooms]: string | Set<string> | undefined
}

/** Whether `member` is in `room` (no allocation: checked for every message sent to a room). */
export function isIn (member: RoomMember, room: string): boolean {
  const rooms = member[kRooms]
  return rooms === room || (typeof rooms === 'object' && rooms.has(room))
}

/** How many rooms `member` is in. */
export function roomCount (member: RoomMember): number {
  const rooms = member[kRooms]
  return rooms === undefined ? 0 : typeof rooms === 'string' ? 1 : rooms.size
}

/**
 * Local room membership: room -> members here, member -> rooms on the member.
 * A room exists while it has a member; the last leave deletes it at once.
 */
export class RoomRegistry<M extends RoomMember> {
  readonly #members = new Map<string, Set<M>>()

  /** Adds `member` to `room`; returns true when it is the room's first member. */
  add (room: string, member: M): boolean {
    let members = this.#members.get(room)
    const first = members === undefined
    if (members === undefined) {
      members = new Set()
      this.#members.set(room, members)
    }
    if (members.has(member)) return first
    members.add(member)
    const rooms = member[kRooms]
    if (rooms === undefined) member[kRooms] = room
    else if (typeof rooms === 'string') member[kRooms] = new Set([rooms, room])
    else rooms.add(room)
    return first
  }

  /** Removes `member` from `room`; returns true when the room is now empty (and gone). */
  remove (room: string, member: M): boolean {
    const members = this.#members.get(room)
    if (members === undefined || !members.delete(member)) return false
    const rooms = member[kRooms]
    if (rooms === room) {
      member[kRooms] = undefined
    } else if (typeof rooms === 'object') {
      rooms.delete(room)
      // back to the one name, so a member that joined two rooms and left one keeps no Set
      if (rooms.size === 1) member[kRooms] = rooms.values().next().value
    }
    if (members.size > 0) return false
    this.#members.delete(room)
    return true
  }

  /** Removes `member` from every room; returns the rooms it was in. */
  removeAll (member: M): string[] {
    const rooms = member[kRooms]
    if (rooms === undefined) return []
    const left = typeof rooms === 'string' ? [rooms] : [...rooms]
    for (const room of left) this.remove(room, member)
    return left
  }

  has (room: string, member: M): boolean {
    return isIn(member, room)
  }

  /** The live member set of a room (do not mutate), or undefined when nobody is in it. */
  membersOf (room: string): ReadonlySet<M> | undefined {
    return this.#members.get(room)
  }

  /** The rooms `member` is in, as a snapshot (a new Set each call). */
  roomsOf (member: M): ReadonlySet<string> {
    const rooms = member[kRooms]
    if (rooms === undefined) return EMPTY
    return typeof rooms === 'string' ? new Set([rooms]) : new Set(rooms)
  }

  roomNames (): string[] {
    return [...this.#members.keys()]
  }

  get size (): number {
    return this.#members.size
  }
}

const EMPTY: ReadonlySet<string> = new Set()
