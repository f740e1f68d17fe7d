import { once } from 'node:events'
import { createServer } from 'node:net'

// The project's one `until`, `eventually` and `freePort`: every test waits and
// picks ports the same way.

const POLL_MS = 5

/** Wait until `check` holds (polled); throws naming `what` after `ms`. Resolves with the ms it took. */
export async function until (check: () => boolean | Promise<boolean>, ms = 5000, what = 'condition'): Promise<number> {
  const start = Date.now()
  while (!(await check())) {
    if (Date.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, POLL_MS))
  }
  return Date.now() - start
}

/** Whether `check` came to hold within `ms` (for `t.ok(await eventually(...))`). */
export async function eventually (check: () => boolean | Promise<boolean>, ms = 5000): Promise<boolean> {
  return await until(check, ms).then(() => true, () => false)
}

/** A port nothing listens on right now. */
export async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}

/** `promise`, or a rejection naming `what` after `ms` (a missing fix fails instead of hanging). */
export async function within<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms) })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}
