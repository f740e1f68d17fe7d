import { createHmac } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import WebSocket from 'ws'
export { until } from '../helpers/wait.js'

/** The HTTP answer to an upgrade the server refused. */
export interface Refusal {
  statusCode: number
  headers: IncomingHttpHeaders
  body: any
}

/**
 * Try a real upgrade with the `ws` client that the server must refuse; resolves
 * with the status, headers and parsed JSON body, rejects if the socket opened.
 */
export async function refusal (url: string, options: WebSocket.ClientOptions = {}, protocols?: string[]): Promise<Refusal> {
  const ws = new WebSocket(url, protocols, options)
  return await new Promise((resolve, reject) => {
    // a network error rejects; the one terminate() causes after the answer came is ignored
    ws.on('error', reject)
    ws.once('open', () => {
      ws.terminate()
      reject(new Error('the upgrade was accepted'))
    })
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => {
        ws.terminate()
        const text = Buffer.concat(chunks).toString()
        let body: unknown = text
        try {
          body = JSON.parse(text)
        } catch {}
        resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body })
      })
    })
  })
}

function part (value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url')
}

/** A token signed by hand with HS256 and `secret` (for a wrong-secret token). */
export function hs256 (payload: Record<string, unknown>, secret: string): string {
  const unsigned = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(payload)}`
  return `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`
}

/** An unsigned `alg: none` token: header, payload and an empty signature. */
export function algNone (payload: Record<string, unknown>): string {
  return `${part({ alg: 'none', typ: 'JWT' })}.${part(payload)}.`
}

/** A promise with its resolve function, to hold a hook open until the test lets go. */
export function gate (): { promise: Promise<void>, open: () => void } {
  let open!: () => void
  const promise = new Promise<void>((resolve) => { open = resolve })
  return { promise, open }
}
