// Heap and prototype probes for the reliability suite.
import v8 from 'node:v8'
import vm from 'node:vm'

let collect: (() => void) | undefined

/** A real `gc()`, even when node was started without --expose-gc. */
export function gc (): void {
  if (collect === undefined) {
    v8.setFlagsFromString('--expose-gc')
    collect = vm.runInNewContext('gc') as () => void
  }
  collect()
  collect()
}

/** Bytes of heap in use after a full collection. */
export function heapAfterGc (): number {
  gc()
  return process.memoryUsage().heapUsed
}

const PROTOTYPES: Array<[string, object]> = [
  ['Object.prototype', Object.prototype],
  ['Array.prototype', Array.prototype],
  ['Function.prototype', Function.prototype],
  ['String.prototype', String.prototype]
]

/** Own property names of the built-in prototypes a JSON payload could try to pollute. */
export function prototypeSnapshot (): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  for (const [name, proto] of PROTOTYPES) out[name] = Reflect.ownKeys(proto).map(String).sort()
  return out
}
