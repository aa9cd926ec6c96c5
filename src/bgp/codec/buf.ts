/**
 * A bounds-checked read cursor and a growable writer over Uint8Array + DataView. Every read past
 * the end throws the BgpDecodeError the caller names, so a truncated field never reads garbage.
 */
import { BgpDecodeError } from "./errors.ts";

export class Reader {
  private readonly view: DataView;
  pos: number;
  readonly end: number;

  constructor(
    readonly buf: Uint8Array,
    start = 0,
    end = buf.length,
    private readonly onShort: () => BgpDecodeError = () => new BgpDecodeError(1, 2, "message truncated"),
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.pos = start;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  private need(n: number): void {
    if (this.pos + n > this.end) throw this.onShort();
  }

  u8(): number {
    this.need(1);
    return this.view.getUint8(this.pos++);
  }

  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  bytes(n: number): Uint8Array {
    this.need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  /** A sub-reader over the next n bytes (which this reader skips). */
  sub(n: number, onShort = this.onShort): Reader {
    this.need(n);
    const r = new Reader(this.buf, this.pos, this.pos + n, onShort);
    this.pos += n;
    return r;
  }
}

export class Writer {
  buf: Uint8Array;
  private view: DataView;
  pos = 0;

  constructor(capacity = 256) {
    this.buf = new Uint8Array(capacity);
    this.view = new DataView(this.buf.buffer);
  }

  private grow(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.pos + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): this {
    this.grow(1);
    this.view.setUint8(this.pos++, v);
    return this;
  }

  u16(v: number): this {
    this.grow(2);
    this.view.setUint16(this.pos, v);
    this.pos += 2;
    return this;
  }

  u32(v: number): this {
    this.grow(4);
    this.view.setUint32(this.pos, v >>> 0);
    this.pos += 4;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.grow(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  /** Writes a u16 at an earlier position (for lengths known only afterwards). */
  patchU16(at: number, v: number): void {
    this.view.setUint16(at, v);
  }

  patchU8(at: number, v: number): void {
    this.view.setUint8(at, v);
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}
