/**
 * Incremental framer: feed it TCP reads of any size, get whole BGP messages back. It keeps the
 * partial tail across reads and validates each header (RFC 4271 §6.1) as soon as 19 bytes exist,
 * so a desynchronised stream is reported before its bogus length is waited for.
 */
import { HEADER_LEN, MAX_MESSAGE_LEN } from "./constants.ts";
import { BgpDecodeError } from "./errors.ts";
import { checkHeader } from "./messages.ts";

export type FrameResult = { messages: Uint8Array[]; error?: BgpDecodeError };

export class Framer {
  private buf = new Uint8Array(8192);
  private len = 0;
  private failed: BgpDecodeError | null = null;

  constructor(private readonly maxLen = MAX_MESSAGE_LEN) {}

  /** Bytes held waiting for the rest of a message. */
  get pending(): number {
    return this.len;
  }

  /**
   * Appends `chunk` and returns every complete message (each a fresh copy). After a header error
   * the framer is dead: it returns the same error and no messages from then on.
   */
  push(chunk: Uint8Array): FrameResult {
    if (this.failed) return { messages: [], error: this.failed };
    if (this.len + chunk.length > this.buf.length) {
      let cap = this.buf.length * 2;
      while (cap < this.len + chunk.length) cap *= 2;
      const next = new Uint8Array(cap);
      next.set(this.buf.subarray(0, this.len));
      this.buf = next;
    }
    this.buf.set(chunk, this.len);
    this.len += chunk.length;
    const messages: Uint8Array[] = [];
    let off = 0;
    while (this.len - off >= HEADER_LEN) {
      let msgLen: number;
      try {
        msgLen = checkHeader(this.buf, off, this.maxLen);
      } catch (e) {
        this.failed = e instanceof BgpDecodeError ? e : new BgpDecodeError(1, 0, String(e));
        this.len = 0;
        return { messages, error: this.failed };
      }
      if (this.len - off < msgLen) break;
      messages.push(this.buf.slice(off, off + msgLen));
      off += msgLen;
    }
    if (off > 0) {
      this.buf.copyWithin(0, off, this.len);
      this.len -= off;
    }
    return { messages };
  }
}
