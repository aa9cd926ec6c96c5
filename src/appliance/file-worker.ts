/**
 * The file worker (see file-reload.ts): runs in a Bun Worker, so parsing and validating the
 * manifest files never delays the main thread's timers. One job at a time: pre-scan the joined
 * text against the file budgets (the verdicts of unchanged chunks reused, file-load.ts), parse and
 * validate it reusing every document unchanged since the last job (file-load.ts,
 * src/config/load-reuse.ts), and answer with the refusal, the problems, or — valid —
 * what changed since the Config the main thread holds (config-delta.ts), or the whole Config when
 * the main thread holds none, another one, or the change is as large as the Config.
 */

import { boundProblems } from "../config/budget.ts";
import type { Config } from "../config/index.ts";
import { threadNice } from "../util/thread.ts";
import { configSize, deltaSize, diffConfig } from "./config-delta.ts";
import { ChunkedLoader } from "./file-load.ts";
import type { FileJob, FileReply } from "./file-reload.ts";

declare const self: Worker;

/**
 * A large parse (the first load, or many documents changed) runs at nice 10, so that on a busy
 * machine the scheduler runs the main thread's timers before the parser; a reload that changed a
 * few documents runs at the default priority, so that it is not starved by every other process.
 */
const priority = threadNice();
priority(10);

/** Chunks (~128 documents each) to load above which the parse runs at a lower priority. */
const LARGE_PARSE = 8;

/** The files' documents, reused across reloads while their text stays the same. */
const loader = new ChunkedLoader();
/** The last valid Config, and its number (what the main thread names as the one it holds). */
let last: Config | undefined;
let lastSeq = 0;

function answer(job: FileJob): FileReply {
  const scan = loader.prescan(job.text, job.limits);
  if (!scan.ok)
    return { id: job.id, kind: "refused", reason: scan.reason, line: scan.line, message: scan.message };
  const r = loader.load(job.text, job.file, (chunks) => priority(chunks > LARGE_PARSE ? 10 : 0));
  if (!r.ok) {
    const b = boundProblems(r.problems, job.maxProblems);
    return { id: job.id, kind: "invalid", problems: b.problems, omitted: b.omitted };
  }
  const prev = last;
  last = r.config;
  lastSeq++;
  if (prev !== undefined && job.have === lastSeq - 1) {
    const delta = diffConfig(prev, r.config);
    if (deltaSize(delta) * 2 < configSize(r.config))
      return { id: job.id, kind: "delta", seq: lastSeq, base: job.have, deltaJson: JSON.stringify(delta) };
  }
  return { id: job.id, kind: "full", seq: lastSeq, configJson: JSON.stringify(r.config) };
}

self.onmessage = (ev: MessageEvent<FileJob>) => {
  const job = ev.data;
  let reply: FileReply;
  try {
    reply = answer(job);
  } catch (e) {
    // "Maximum call stack size exceeded" and the like: the pre-scan should make them impossible.
    reply = { id: job.id, kind: "error", message: (e as Error).message };
  }
  postMessage(reply);
  // Waiting for the next job at the default priority: a one-document reload is woken and pre-scanned
  // as promptly as the main thread (a large parse lowers it again before it starts).
  priority(0);
  // After a large text (the first load parses every document) the heap gives the parse's memory
  // back now, after the answer.
  if (job.text.length > 64 * 1024 && loader.last.loaded > 8) Bun.gc(true);
};

postMessage({ id: -1, kind: "ready" } satisfies FileReply);
