/** Where the client is in one room's history: the last offset it delivered, in which epoch. */
export interface Position {
  offset: number
  epoch: string | undefined
}

/**
 * The last offset and the epoch of each room with history, so a re-join asks
 * for what was missed (`since`) and a message delivered twice is dropped.
 * Offsets only compare within one epoch; a new epoch replaces the position.
 */
export class RoomPositions {
  readonly #byRoom = new Map<string, Position>()

  /** `since` for a re-join, when the room's position and epoch are known. */
  since (room: string): { offset: number, epoch: string } | undefined {
    const position = this.#byRoom.get(room)
    if (position?.epoch === undefined) return undefined
    return { offset: position.offset, epoch: position.epoch }
  }

  /** A room message with `offset`: true to deliver it, false when the client already has it. */
  accept (room: string, offset: number): boolean {
    const position = this.#byRoom.get(room)
    if (position === undefined) {
      this.#byRoom.set(room, { offset, epoch: undefined })
      return true
    }
    if (offset <= position.offset) return false
    position.offset = offset
    return true
  }

  /** Take the server's word for where the room is (a join ack, a resync). */
  adopt (room: string, epoch: string, offset: number): void {
    this.#byRoom.set(room, { offset, epoch })
  }

  forget (room: string): void {
    this.#byRoom.delete(room)
  }
}
