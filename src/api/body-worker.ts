/**
 * The worker side of body checking (see body-check.ts): runs in a Bun Worker, with its own event
 * loop and heap, so parsing and validating an untrusted manifest set never delays the main
 * thread's timers. One job at a time: pre-scan the text against its budget (size, documents,
 * depth, nodes; src/config/budget.ts), and only then parse and validate it (src/config). Answers
 * with a refusal, the problems (at most `maxProblems`, then "and K more"), or — valid — a summary
 * and, when asked for, the Config itself (plain data: it crosses by structured clone).
 */

import { boundProblems, prescanYaml } from "../config/budget.ts";
import { configFromText } from "../config/index.ts";
import { type CheckJob, type CheckReply, summarize } from "./body-protocol.ts";

declare const self: Worker;

self.onmessage = (ev: MessageEvent<CheckJob>) => {
  const job = ev.data;
  let reply: CheckReply;
  try {
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
          ...(job.wantConfig ? { config: r.config } : {}),
        };
      }
    }
  } catch (e) {
    // "Maximum call stack size exceeded" and the like: the pre-scan should make them impossible.
    reply = { id: job.id, kind: "error", message: (e as Error).message };
  }
  postMessage(reply);
};

postMessage({ id: -1, kind: "ready" } satisfies CheckReply);
