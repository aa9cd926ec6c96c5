/**
 * The tests' one poll-until-deadline helper: calls `f` every 50 ms (or `everyMs`) until it returns a value
 * (anything but `undefined` or `false`), and returns that value; past the deadline it throws
 * "timed out waiting for WHAT", with the last error `f` threw, if any. An error thrown by `f`
 * counts as "not yet" (an API not listening yet, a file not written yet). Outcomes in tests are
 * polled with it instead of fixed sleeps.
 *
 * @example
 * const owner = await until("an owner for the VIP", async () => (await api("/l2")).owner, 10_000);
 * await until("the session Established", async () => (await status()).state === "Established");
 */

export async function until<T>(
  what: string,
  f: () => T | undefined | false | Promise<T | undefined | false>,
  ms = 20_000,
  /** How often `f` is called (a costly check, e.g. a 100k-route table, asks less often). */
  everyMs = 50,
): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await f();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end)
      throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await Bun.sleep(everyMs);
  }
}
