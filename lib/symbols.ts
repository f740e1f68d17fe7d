// Per-connection state that one module owns, kept on the connection under a
// symbol (as fastify keeps kReply*): the owner reads and writes it, nobody
// else sees it, and it costs no object per connection.

/** rooms.ts: the rooms a member is in: none, the one room's name, or a Set of two or more. */
export const kRooms = Symbol('fastify-realtime.rooms')
/** ws/writer.ts: frames held for this turn's write (one, or several in order). */
export const kPending = Symbol('fastify-realtime.pending')
/** ws/writer.ts: bytes handed over this turn (held, or given to ws.send). */
export const kTurnBytes = Symbol('fastify-realtime.turnBytes')
/** limits.ts: the rate window's start (ms) and the messages counted in it. */
export const kRateStart = Symbol('fastify-realtime.rateStart')
export const kRateCount = Symbol('fastify-realtime.rateCount')
/** limits.ts: the timer that drops a slow consumer that did not close in time. */
export const kDropTimer = Symbol('fastify-realtime.dropTimer')
/** heartbeat.ts: heard since the last sweep, and the socket's bytesRead then. */
export const kAlive = Symbol('fastify-realtime.alive')
export const kReadMark = Symbol('fastify-realtime.readMark')
/** auth.ts: the token-expiry timer. */
export const kExpiry = Symbol('fastify-realtime.expiry')
/** inbound.ts: a handler is pending; frames wait behind it, with their bytes. */
export const kBusy = Symbol('fastify-realtime.busy')
export const kBacklog = Symbol('fastify-realtime.backlog')
/** connection.ts: the hub a connection belongs to. */
export const kHost = Symbol('fastify-realtime.host')
/** ws/socket.ts: where a ws socket keeps its connection, for listeners every connection shares. */
export const kConnection = Symbol('fastify-realtime.connection')
/** hub.ts: messages this connection sent and was sent, for its close log line. */
export const kMessagesIn = Symbol('fastify-realtime.messagesIn')
export const kMessagesOut = Symbol('fastify-realtime.messagesOut')
/** connection-events.ts: when the connection opened (ms since the epoch; 0 until it did). */
export const kOpenedAt = Symbol('fastify-realtime.openedAt')
/** connection.ts: the close code and reason the server sent, when it began the close. */
export const kCloseSent = Symbol('fastify-realtime.closeSent')
