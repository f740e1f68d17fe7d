/**
 * Local room membership in two maps: room -> members and member -> rooms.
 * A room exists while it has a member; the last leave deletes it at once.
 */
export class RoomRegistry<M> {
  readonly #members = new Map<string, Set<M>>()
  readonly #rooms = new Map<M, Set<string>>()

  /** Adds `member` to `room`; returns true when it is the room's first member. */
  add (room: string, member: M): boolean {
    let members = this.#members.get(room)
    const first = members === undefined
    if (members === undefined) {
      members = new Set()
      this.#members.set(room, members)
    }
    members.add(member)
    let rooms = this.#rooms.get(member)
    if (rooms === undefined) {
      rooms = new Set()
      this.#rooms.set(member, rooms)
    }
    rooms.add(room)
    return first
  }

  /** Removes `member` from `room`; returns true when the room is now empty (and gone). */
  remove (room: string, member: M): boolean {
    const members = this.#members.get(room)
    if (members === undefined || !members.delete(member)) return false
    const rooms = this.#rooms.get(member)
    if (rooms !== undefined) {
      rooms.delete(room)
      if (rooms.size === 0) this.#rooms.delete(member)
    }
    if (members.size > 0) return false
    this.#members.delete(room)
    return true
  }

  /** Removes `member` from every room; returns the rooms it was in. */
  removeAll (member: M): string[] {
    const rooms = this.#rooms.get(member)
    if (rooms === undefined) return []
    const left = [...rooms]
    for (const room of left) this.remove(room, member)
    return left
  }

  has (room: string, member: M): boolean {
    return this.#members.get(room)?.has(member) === true
  }

  /** The live member set of a room (do not mutate), or undefined when nobody is in it. */
  membersOf (room: string): ReadonlySet<M> | undefined {
    return this.#members.get(room)
  }

  /** The rooms `member` is in. */
  roomsOf (member: M): ReadonlySet<string> {
    return this.#rooms.get(member) ?? EMPTY
  }

  roomNames (): string[] {
    return [...this.#members.keys()]
  }

  get size (): number {
    return this.#members.size
  }
}

const EMPTY: ReadonlySet<string> = new Set()
