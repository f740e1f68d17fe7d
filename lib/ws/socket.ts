import { WebSocket } from 'ws'
import { releaseHeldFrames } from './writer.js'

/**
 * The ws socket class of the plugin's connections (ws's `WebSocket` option).
 * Whoever starts a close (the app, ws answering the peer's close frame, ws
 * after a protocol error), the frames the writer still holds for this socket
 * are written first, so they keep their place before the close frame.
 */
export class RealtimeSocket extends WebSocket {
  override close (code?: number, data?: string | Buffer): void {
    releaseHeldFrames(this)
    super.close(code, data)
  }
}
