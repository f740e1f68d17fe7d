import type { ClientErrorLike } from './types.js'

/**
 * An error of the client: `code` is the server's wire code (`FORBIDDEN`,
 * `INVALID_MESSAGE`, `RATE_LIMITED`, ...) or one of the client's own:
 * `TIMEOUT`, `CLOSED`, `QUEUE_FULL`, `CONNECT_FAILED` (with `statusCode` when
 * the server answered HTTP, and `failures` when the client gave up after that
 * many failed attempts in a row), `UNAUTHORIZED`, `KICKED`, `RECONNECT_FAILED`,
 * `TOKEN_ERROR`, `BAD_FRAME` (a server frame the client could not use).
 * @example
 * try { await client.request('chat.send', { text }) } catch (err) { if (err.code === 'TIMEOUT') retry() }
 */
export class RealtimeClientError extends Error implements ClientErrorLike {
  readonly code: string
  readonly statusCode?: number
  readonly details?: unknown[]
  readonly failures?: number

  constructor (code: string, message: string, extra: { statusCode?: number, details?: unknown[], failures?: number, cause?: unknown } = {}) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause })
    this.name = 'RealtimeClientError'
    this.code = code
    if (extra.statusCode !== undefined) this.statusCode = extra.statusCode
    if (extra.details !== undefined) this.details = extra.details
    if (extra.failures !== undefined) this.failures = extra.failures
  }
}
