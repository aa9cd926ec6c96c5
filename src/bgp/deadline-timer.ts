/**
 * One runtime timer that follows the FSM's next deadline (fsm.ts keeps timers as deadlines, pure):
 * re-armed after every step, left alone when the deadline did not move, and on expiry the event is
 * fired only if its deadline has really come (a timer may wake early or find the deadline moved).
 */
export interface Deadline<E> {
  at: number;
  event: E;
}

export class DeadlineTimer<E> {
  private timer: ReturnType<typeof setTimeout> | null = null;
  private at = 0;

  constructor(
    private readonly next: () => Deadline<E> | null,
    private readonly now: () => number,
    private readonly fire: (event: E) => void,
  ) {}

  /** Follows the current deadline; `running` false stops the timer. */
  arm(running = true): void {
    const d = this.next();
    if (d === null || !running) {
      this.clear();
      return;
    }
    if (this.timer && this.at === d.at) return;
    if (this.timer) clearTimeout(this.timer);
    this.at = d.at;
    this.timer = setTimeout(
      () => {
        this.timer = null;
        const cur = this.next();
        if (cur === null) return;
        if (cur.at > this.now()) {
          this.arm();
          return;
        }
        this.fire(cur.event);
      },
      Math.max(0, d.at - this.now()),
    );
  }

  clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
