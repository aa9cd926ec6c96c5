/**
 * The worker side of body checking (see body-check.ts): runs in a Bun Worker, with its own event
 * loop and heap, so parsing and validating an untrusted manifest set never delays the main
 * thread's timers. One job at a time: pre-scan the text against its budget (size, documents,
 * depth, nodes; src/config/budget.ts), and only then parse and validate it (src/config). Answers
 * with a refusal, the problems (at most `maxProblems`, then "and K more"), or — valid — a summary
 * and, when asked for, the Config itself (plain data: it crosses as JSON text).
 */

import { boundProblems, prescanYaml } from "../config/budget.ts";
import { configFromText } from "../config/index.ts";
import { siteText } from "../config/site-text.ts";
import { threadNice } from "../util/thread.ts";
import { type CheckJob, type CheckReply, summarize } from "./body-protocol.ts";

declare const self: Worker;

// nice 10: on a busy machine the scheduler runs the main thread's timers before the parser.
threadNice()(10);

self.onmessage = (ev: MessageEvent<CheckJob>) => {
  const job = ev.data;
  let reply: CheckReply;
  try {
    // Bytes were moved here (body-check.ts): decode them on this thread, as readYaml would.
    if (job.bytes !== undefined) {
      job.text = new TextDecoder("utf-8", { fatal: true }).decode(job.bytes);
      delete job.bytes;
    }
    if (job.op === "siteText") {
      postMessage({ id: job.id, kind: "siteText", text: siteText(job.text) } satisfies CheckReply);
      return;
    }
    const scan = prescanYaml(job.text, job.limits);
    if (!scan.ok) {
      reply = { id: job.id, kind: "refused", reason: scan.reason, line: scan.line, message: scan.message };
    } else {
      const r = configFromText(job.text, job.file);
      if (!r.ok) {
        const b = boundProblems(r.problems, job.maxProblems);
        reply = { id: job.id, kind: "invalid", problems: b.problems, omitted: b.omitted };
      } else {
        reply = {
          id: job.id,
          kind: "valid",
          summary: summarize(r.config),
          ...(job.wantConfig ? { configJson: JSON.stringify(r.config) } : {}),
        };
      }
    }
  } catch (e) {
    // "Maximum call stack size exceeded" and the like: the pre-scan should make them impossible.
    reply = { id: job.id, kind: "error", message: (e as Error).message };
  }
  postMessage(reply);
  collectAfterBodies(job.text.length);
};

/** Characters of request bodies checked since this worker last collected its garbage. */
let sinceCollect = 0;
/** See collectAfterBodies. */
const COLLECT_EVERY = 4 * 1024 * 1024;

/**
 * Collects this worker's garbage (a full, synchronous GC: 4–150 ms on a loaded 2-core machine, on
 * this thread only) after every 4 MiB of request bodies. A flood of 1 MiB bodies the pre-scan
 * refuses keeps the worker (nothing grew but garbage), and left alone its heap let that garbage
 * pile up: the process's peak RSS under four flooding clients fell from 132–143 MB to 96 MB with
 * it (bench scratch, load average 15), and the flood is answered more slowly — the collection is
 * paid by the clients sending the bodies, not by anyone else.
 */
function collectAfterBodies(chars: number): void {
  sinceCollect += chars;
  if (sinceCollect < COLLECT_EVERY) return;
  sinceCollect = 0;
  Bun.gc(true);
}

postMessage({ id: -1, kind: "ready" } satisfies CheckReply);
