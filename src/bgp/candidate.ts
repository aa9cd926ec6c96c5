/**
 * The second connection of a session (RFC 4271 §6.8 collisions, RFC 4724 §4.2 restarts): what to
 * do with it once its OPEN arrives — a pure decision — and the timer that drops it when no OPEN
 * comes within the large hold time (RFC 4271 §8.2.2, 4 minutes), so a silent connect cannot pin a
 * socket for ever.
 */
import { collisionWinner, type FsmState } from "./fsm.ts";

/** RFC 4271 §8.2.2: the large hold time while waiting for an OPEN on a held connection. */
export const CANDIDATE_OPEN_WAIT_MS = 240_000;

export type CandidateVerdict =
  /** Close the held connection (not an OPEN, or the session is held down). */
  | "drop"
  /** The old connection is gone meanwhile: the held one simply becomes the session's connection. */
  | "adopt"
  /** A graceful-restart peer we are Established with restarted: drop the old one, run the new one. */
  | "peer-restarted"
  /** Collision lost by the new connection: Cease/7 on it. */
  | "keep-existing"
  /** Collision won by the new connection: Cease/7 on the old one, run the new one. */
  | "replace-existing";

export interface CandidateFacts {
  /** The held connection's first message is an OPEN. */
  isOpen: boolean;
  state: FsmState;
  /** The session has a connection of its own. */
  hasConn: boolean;
  /** Direction of the session's own connection ("out": we connected). */
  connDir: "in" | "out" | null;
  enabled: boolean;
  /** Graceful restart negotiated on the Established session. */
  graceful: boolean;
  /** The held connection's OPEN carries the graceful-restart capability. */
  openHasGracefulRestart: boolean;
  localBgpId: number;
  peerBgpId: number;
}

/** §6.8 and RFC 4724 §4.2: the held connection's OPEN decides which connection survives. */
export function candidateVerdict(f: CandidateFacts): CandidateVerdict {
  if (!f.isOpen) return "drop";
  if (!f.hasConn || f.state === "Connect" || f.state === "Active") return f.enabled ? "adopt" : "drop";
  if (f.state === "Established" && f.graceful && f.openHasGracefulRestart) return "peer-restarted";
  const winner = collisionWinner(f.localBgpId, f.peerBgpId);
  const keepExisting = f.state === "Established" || (winner === "local-initiated") === (f.connDir === "out");
  return keepExisting ? "keep-existing" : "replace-existing";
}

/** One held connection at a time, dropped by `onExpire` after CANDIDATE_OPEN_WAIT_MS. */
export class CandidateTimer {
  private timer: ReturnType<typeof setTimeout> | null = null;

  arm(onExpire: () => void, ms = CANDIDATE_OPEN_WAIT_MS): void {
    this.clear();
    this.timer = setTimeout(() => {
      this.timer = null;
      onExpire();
    }, ms);
    (this.timer as { unref?: () => void }).unref?.();
  }

  clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
