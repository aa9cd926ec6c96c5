/**
 * A byte-for-byte TCP/Unix-socket forwarder for the k8s lab tests: processes inside a network
 * namespace cannot reach the host's 127.0.0.1, but a Unix socket with a file-system path is
 * reachable from every namespace. So the test runs `forward.ts unix:PATH tcp:127.0.0.1:PORT` on
 * the host (next to the API server) and `forward.ts tcp:127.0.0.1:PORT unix:PATH` inside each
 * node's namespace: vipd there talks TLS to https://127.0.0.1:PORT as if the API server were
 * local, end to end (the forwarders see only ciphertext). Exits when its parent kills it.
 *
 * usage: bun test/k8s/forward.ts LISTEN TARGET   (each tcp:HOST:PORT or unix:PATH)
 */
import { connect, createServer, type Socket } from "node:net";

type End = { unix: string } | { host: string; port: number };

function parseEnd(s: string | undefined): End {
  if (s?.startsWith("unix:")) return { unix: s.slice(5) };
  const m = /^tcp:(.+):(\d+)$/.exec(s ?? "");
  if (m === null) throw new Error(`not tcp:HOST:PORT or unix:PATH: ${s}`);
  return { host: m[1] as string, port: Number(m[2]) };
}

const [listenArg, targetArg] = process.argv.slice(2);
const listen = parseEnd(listenArg);
const target = parseEnd(targetArg);

const server = createServer((client: Socket) => {
  const upstream = "unix" in target ? connect(target.unix) : connect(target.port, target.host);
  client.pipe(upstream);
  upstream.pipe(client);
  const close = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on("error", close);
  upstream.on("error", close);
  client.on("close", close);
  upstream.on("close", close);
});
server.on("error", (e) => {
  console.error(`forward: ${e.message}`);
  process.exit(1);
});
const ready = () => console.log("ready");
if ("unix" in listen) server.listen(listen.unix, ready);
else server.listen(listen.port, listen.host, ready);
