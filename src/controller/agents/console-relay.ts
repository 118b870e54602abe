/**
 * The controller's end of one console stream: a Readable the API pipes to its client. The agent may
 * send `window` bytes ahead; credit goes back as the client takes data (Node calls _read when the
 * client has room), so a slow client pauses the agent's reading of the log and the controller never
 * holds more than one window of a guest's output per stream. Data beyond the window breaks the
 * protocol: the relay refuses it and the stream ends.
 */
import { Readable } from 'node:stream';

export class ConsoleRelay extends Readable {
  private received = 0;
  private returned = 0;

  constructor(
    readonly window: number,
    private readonly grant: (bytes: number) => void,
  ) {
    super({ highWaterMark: Math.min(64 * 1024, window) });
  }

  /** Data from the agent; false (and nothing taken) if it goes beyond the credit granted. */
  accept(chunk: Buffer): boolean {
    if (this.received + chunk.length - this.returned > this.window) return false;
    this.received += chunk.length;
    this.push(chunk);
    return true;
  }

  /** Bytes held here for the client. */
  get buffered(): number {
    return this.readableLength;
  }

  /** The agent has used all its credit and waits for the client. */
  get awaitingCredit(): boolean {
    return this.received - this.returned >= this.window;
  }

  override _read(): void {
    // Credit back in quarters of the window (fewer messages), or all of it once the client has taken everything.
    const due = this.received - this.readableLength - this.returned;
    if (due > 0 && (due >= this.window / 4 || this.readableLength === 0)) {
      this.returned += due;
      this.grant(due);
    }
  }
}
