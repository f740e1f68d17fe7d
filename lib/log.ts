import type { FastifyRequest } from 'fastify'

const TOKEN_PARAM = /([?&]token=)[^&#]*/gi

/** `url` with the `token` query parameter's value replaced, for logs. */
export function redactUrl (url: string): string {
  return url.replace(TOKEN_PARAM, '$1[REDACTED]')
}

/**
 * Request serializer for WebSocket routes: Fastify's fields, with the query
 * token redacted (Fastify logs the url before any hook runs).
 */
export function redactedRequest (request: FastifyRequest): Record<string, unknown> {
  return {
    method: request.method,
    url: redactUrl(request.url),
    host: request.headers.host,
    remoteAddress: request.raw.socket?.remoteAddress,
    remotePort: request.raw.socket?.remotePort
  }
}
