/**
 * MetalLB BFDProfile fields as vipd applies them to a BFD session: validation (with the messages a
 * user sees) and conversion to FSM parameters.
 *
 * Pure. Echo mode (RFC 5880 §6.4) is not implemented: `echoMode: true` is rejected here with a
 * message saying so, rather than silently running without it.
 */

import type { SessionParams } from "./fsm.ts";

export interface BfdProfile {
  /** Milliseconds. */
  receiveInterval: number;
  transmitInterval: number;
  detectMultiplier: number;
  echoMode: boolean;
  echoInterval: number;
  passiveMode: boolean;
  /** Multihop only: packets with a smaller TTL are dropped (RFC 5883 §5). */
  minimumTtl: number;
}

/** MetalLB's defaults. */
export const DEFAULT_PROFILE: BfdProfile = {
  receiveInterval: 300,
  transmitInterval: 300,
  detectMultiplier: 3,
  echoMode: false,
  echoInterval: 50,
  passiveMode: false,
  minimumTtl: 254,
};

function intIn(errors: string[], name: string, v: number, min: number, max: number): void {
  if (!Number.isInteger(v) || v < min || v > max)
    errors.push(`${name}: must be an integer in ${min}..${max}, got ${v}`);
}

/** Problems with a profile, one message per field; empty when it can be applied. */
export function validateProfile(p: BfdProfile): string[] {
  const errors: string[] = [];
  intIn(errors, "receiveInterval", p.receiveInterval, 10, 60000);
  intIn(errors, "transmitInterval", p.transmitInterval, 10, 60000);
  intIn(errors, "detectMultiplier", p.detectMultiplier, 2, 255);
  intIn(errors, "echoInterval", p.echoInterval, 10, 60000);
  intIn(errors, "minimumTtl", p.minimumTtl, 1, 254);
  if (p.echoMode) {
    errors.push(
      "echoMode: BFD echo mode is not supported by vipd; set echoMode: false (asynchronous mode is used)",
    );
  }
  return errors;
}

export function profileToParams(p: BfdProfile): Omit<SessionParams, "auth"> {
  return {
    desiredMinTxUs: p.transmitInterval * 1000,
    requiredMinRxUs: p.receiveInterval * 1000,
    detectMult: p.detectMultiplier,
    passive: p.passiveMode,
  };
}
