import { fork } from 'node:child_process'

/**
 * Child side: answer `{ id, cmd, args }` requests from the parent with
 * `{ id, result }` or `{ id, error }`. Exits when the parent goes away.
 */
export function serve (handlers) {
  process.on('disconnect', () => process.exit(0))
  process.on('message', async (msg) => {
    if (msg === null || typeof msg !== 'object' || typeof msg.id !== 'number') return
    const handler = handlers[msg.cmd]
    try {
      if (handler === undefined) throw new Error(`unknown command ${msg.cmd}`)
      const result = await handler(msg.args ?? {})
      process.send({ id: msg.id, result })
    } catch (err) {
      process.send({ id: msg.id, error: err?.stack ?? String(err) })
    }
  })
}

/** Tell the parent this child is ready (with whatever it needs to know). */
export function ready (info = {}) {
  process.send({ ready: true, ...info })
}

/**
 * Parent side: fork `file` with an IPC channel; `ready` resolves with the
 * child's ready message, `call(cmd, args, timeoutMs)` resolves with its answer.
 */
export function spawnChild (file, { args = [], execArgv = [], timeoutMs = 20_000 } = {}) {
  const child = fork(file, args, { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const pending = new Map()
  let nextId = 0
  let exited = false
  let onReady
  let onReadyError
  const readyPromise = new Promise((resolve, reject) => { onReady = resolve; onReadyError = reject })
  const readyTimer = setTimeout(() => onReadyError(new Error(`${file} not ready after ${timeoutMs} ms`)), timeoutMs)

  child.on('message', (msg) => {
    if (msg?.ready === true) {
      clearTimeout(readyTimer)
      onReady(msg)
      return
    }
    const waiter = pending.get(msg?.id)
    if (waiter === undefined) return
    pending.delete(msg.id)
    clearTimeout(waiter.timer)
    if (msg.error !== undefined) waiter.reject(new Error(`${waiter.cmd} failed in child:\n${msg.error}`))
    else waiter.resolve(msg.result)
  })
  child.on('exit', (code, signal) => {
    exited = true
    clearTimeout(readyTimer)
    const err = new Error(`${file} exited (code ${code}, signal ${signal})`)
    onReadyError(err)
    for (const waiter of pending.values()) {
      clearTimeout(waiter.timer)
      waiter.reject(err)
    }
    pending.clear()
  })
  readyPromise.catch(() => {})

  return {
    child,
    ready: readyPromise,
    call (cmd, callArgs = {}, callTimeoutMs = 60_000) {
      if (exited) return Promise.reject(new Error(`${file} already exited`))
      const id = ++nextId
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id)
          reject(new Error(`${cmd} timed out after ${callTimeoutMs} ms`))
        }, callTimeoutMs)
        pending.set(id, { cmd, resolve, reject, timer })
        child.send({ id, cmd, args: callArgs })
      })
    },
    /** Ask the child to exit; kill it if it does not within `graceMs`. */
    async stop (graceMs = 3000) {
      if (exited) return
      const gone = new Promise((resolve) => child.once('exit', resolve))
      if (child.connected) child.disconnect()
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
      await gone
      clearTimeout(timer)
    }
  }
}
