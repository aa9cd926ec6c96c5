/** Running a command with a timeout and captured output (for drivers, tests and the demo). */

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  allowFail?: boolean;
  timeoutMs?: number;
  env?: Record<string, string>;
}

/** Runs a command on the host (not in a namespace), with a timeout. */
export async function sh(cmd: string[], opts: RunOptions = {}): Promise<RunResult> {
  const proc = Bun.spawn(cmd, {
    stdout: "pipe",
    stderr: "pipe",
    stdin: "ignore",
    env: { ...process.env, ...opts.env },
  });
  const timer = setTimeout(() => proc.kill("SIGKILL"), opts.timeoutMs ?? 30_000);
  const [stdout, stderr] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
  ]);
  const code = await proc.exited;
  clearTimeout(timer);
  if (code !== 0 && !opts.allowFail) {
    throw new Error(`command failed (${code}): ${cmd.join(" ")}\n${stderr.trim()}`);
  }
  return { code, stdout, stderr };
}
