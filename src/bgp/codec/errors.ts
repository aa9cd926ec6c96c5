/**
 * Typed decode errors. The parser reports what it found — the NOTIFICATION code/subcode to send and
 * the RFC 7606 action — and the session decides what to do with it.
 *
 * RFC 4271 §6 (error handling), RFC 7606 (revised error handling for UPDATE messages).
 */

/** RFC 7606 §2, from most to least severe. */
export type ErrorAction = "session-reset" | "treat-as-withdraw" | "attribute-discard";

const SEVERITY: Record<ErrorAction, number> = {
  "session-reset": 3,
  "treat-as-withdraw": 2,
  "attribute-discard": 1,
};

export class BgpDecodeError extends Error {
  override readonly name = "BgpDecodeError";
  constructor(
    readonly code: number,
    readonly subcode: number,
    message: string,
    readonly action: ErrorAction = "session-reset",
    readonly data: Uint8Array = new Uint8Array(0),
  ) {
    super(message);
  }
}

export function worstAction(errors: readonly BgpDecodeError[]): ErrorAction | null {
  let worst: ErrorAction | null = null;
  for (const e of errors) if (worst === null || SEVERITY[e.action] > SEVERITY[worst]) worst = e.action;
  return worst;
}

/** Thrown by encoders on values that cannot be put on the wire (a caller bug, not peer input). */
export class BgpEncodeError extends Error {
  override readonly name = "BgpEncodeError";
}
