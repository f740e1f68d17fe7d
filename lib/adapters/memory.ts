import { MemoryHistoryStore } from '../history/memory.js'
import type { HistorySettings, HistoryStore } from '../history/store.js'
import type { Member } from '../protocol.js'
import type { Adapter, AdapterHub } from './adapter.js'

/** The default adapter: one instance, nothing to carry elsewhere. */
export class MemoryAdapter implements Adapter {
  #hub: AdapterHub | undefined
  readonly connected = true

  attach (hub: AdapterHub): void {
    this.#hub = hub
  }

  publish (): void {}

  publishToUser (): void {}

  join (): void {}

  leave (): void {}

  async members (room: string): Promise<Member[]> {
    return this.#hub?.localMembers(room) ?? []
  }

  async close (): Promise<void> {
    this.#hub = undefined
  }

  /** History kept in this process: lost on restart (the next message of a room starts a new epoch). */
  historyStore (settings: HistorySettings): HistoryStore {
    return new MemoryHistoryStore(settings)
  }
}

/** The in-memory adapter, the default. */
export function memoryAdapter (): Adapter {
  return new MemoryAdapter()
}
