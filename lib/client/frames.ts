import { RealtimeClientError } from './error.js'
import { ACK, ERROR, KICKED, MAX_EPOCH_LENGTH, PONG, RESYNC } from './wire.js'
import type { Envelope } from './types.js'

/** Longest type, room, string id or error code the client takes from a server. */
const MAX_NAME = 1024
/** A server's error message longer than this is cut (the server keeps its envelopes under 8 KiB). */
const MAX_MESSAGE = 8192
/** Events the client emits itself: a server message with one of these names could pass for one. */
const CLIENT_EVENTS: ReadonlySet<string> = new Set(['open', 'close', 'reconnecting', 'drop'])

/** One server frame, checked field by field: the client reads nothing it has not checked. */
export type ServerFrame =
  | { kind: 'pong' }
  | { kind: 'ack', id: string | number | undefined, data: unknown }
  | { kind: 'error', id: string | number | undefined, error: RealtimeClientError, envelope: Envelope }
  | { kind: 'resync', room: string, epoch: string, offset: number, envelope: Envelope }
  | { kind: 'kicked', room: string, code: string, envelope: Envelope }
  | { kind: 'message', type: string, room: string | undefined, offset: number | undefined, envelope: Envelope }
  | { kind: 'bad', reason: string }

function bad (reason: string): ServerFrame {
  return { kind: 'bad', reason }
}

function isName (value: unknown): value is string {
  return typeof value === 'string' && value !== '' && value.length <= MAX_NAME
}

export function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** An offset: an integer from 0 up, exactly representable. */
export function isOffset (value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0
}

export function isEpoch (value: unknown): value is string {
  return typeof value === 'string' && value !== '' && value.length <= MAX_EPOCH_LENGTH
}

/** Parse and check one text frame (`null`: a binary frame, which the server never sends). */
export function parseFrame (text: string | null): ServerFrame {
  if (text === null) return bad('a binary frame')
  let msg: unknown
  try {
    msg = JSON.parse(text)
  } catch {
    return bad('not JSON')
  }
  if (!isObject(msg)) return bad('not an object')
  const { type, room, id } = msg
  if (!isName(type)) return bad('no valid "type"')
  if (room !== undefined && !isName(room)) return bad(`"room" of a ${type} is not a room name`)
  if (id !== undefined && !isName(id) && !Number.isFinite(id)) return bad(`"id" of a ${type} is neither a string nor a number`)
  const envelope = msg as unknown as Envelope
  switch (type) {
    case PONG:
      return { kind: 'pong' }
    case ACK:
      return { kind: 'ack', id: id as string | number | undefined, data: msg.data }
    case ERROR:
      return errorFrame(msg, envelope)
    case RESYNC: {
      const { data } = msg
      if (room === undefined || !isObject(data) || !isEpoch(data.epoch) || !isOffset(data.offset)) return bad('a resync without room, epoch and offset')
      return { kind: 'resync', room, epoch: data.epoch, offset: data.offset, envelope }
    }
    case KICKED: {
      const { data } = msg
      if (room === undefined || !isObject(data) || !isName(data.code)) return bad('a kicked without room and code')
      return { kind: 'kicked', room, code: data.code, envelope }
    }
    default: {
      if (CLIENT_EVENTS.has(type)) return bad(`a server message named "${type}", like a client event`)
      const { offset } = msg
      if (offset !== undefined && (room === undefined || !isOffset(offset))) return bad(`"offset" of a ${type} is not an offset in a room`)
      return { kind: 'message', type, room, offset, envelope }
    }
  }
}

function errorFrame (msg: Record<string, unknown>, envelope: Envelope): ServerFrame {
  const { code, message, details } = msg
  if (!isName(code) || code.length > 128) return bad('an error without a valid "code"')
  if (message !== undefined && typeof message !== 'string') return bad('an error whose "message" is not a string')
  if (details !== undefined && !Array.isArray(details)) return bad('an error whose "details" is not a list')
  const text = message === undefined || message === '' ? code : message.slice(0, MAX_MESSAGE)
  const error = new RealtimeClientError(code, text, details === undefined ? {} : { details })
  return { kind: 'error', id: msg.id as string | number | undefined, error, envelope }
}
