// One benchmarked server in its own process: `node --expose-gc server-host.js <kind>`.
// It listens on a free loopback port and answers the orchestrator over IPC
// with its own CPU time and (after gc) memory.
import { writeHeapSnapshot } from 'node:v8'
import { ready, serve } from './lib/ipc.js'
import { SERVERS } from './servers/index.js'

const kind = process.argv[2]
const server = SERVERS[kind]
if (server === undefined) {
  console.error(`unknown server kind ${kind}; one of ${Object.keys(SERVERS).join(', ')}`)
  process.exit(2)
}

function collect () {
  if (typeof globalThis.gc !== 'function') throw new Error('run with --expose-gc')
  // twice: the first pass may only promote what the second frees
  globalThis.gc()
  globalThis.gc()
}

const started = await (await server.load()).start()

serve({
  cpu () {
    const { user, system } = process.cpuUsage()
    // µs of the monotonic clock V8's CPU profiler stamps its samples with
    return { user, system, clock: Number(process.hrtime.bigint() / 1000n) }
  },
  memory () {
    collect()
    const { heapUsed, rss, external, arrayBuffers } = process.memoryUsage()
    return { heapUsed, rss, external, arrayBuffers }
  },
  /** Open connections, as the server counts them. */
  connections () {
    return started.connections()
  },
  snapshot ({ file }) {
    collect()
    return writeHeapSnapshot(file)
  },
  async close () {
    await started.close()
    return true
  }
})

ready({ port: started.port, path: started.path })
