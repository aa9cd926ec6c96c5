/**
 * Lab helper for the k8s layer-2 tests: sends COUNT well-formed membership heartbeats in the name
 * of NODE to HOST:PORT, every INTERVAL ms, authenticated with KEY (hex) — the wrong key makes
 * them forgeries. Bounded in count and time; exits by itself.
 *
 * usage: bun test/k8s/send-heartbeats.ts HOST PORT NODE KEYHEX COUNT INTERVALMS
 */
import { encodeHeartbeat } from "../../src/cluster/heartbeat.ts";

const [host, port, node, keyHex, count, interval] = process.argv.slice(2);
if (host === undefined || node === undefined || keyHex === undefined) {
  console.error("usage: send-heartbeats.ts HOST PORT NODE KEYHEX COUNT INTERVALMS");
  process.exit(2);
}
const key = Uint8Array.from(Buffer.from(keyHex, "hex"));
const n = Math.min(1000, Number(count ?? 20));
const every = Math.max(5, Number(interval ?? 50));
const sock = await Bun.udpSocket({});
let seq = BigInt(Date.now()) * 1000n + 10_000_000n;
for (let i = 0; i < n; i++) {
  const pkt = encodeHeartbeat({ node, seq: seq++, intervalMs: every, leaving: false, ready: true }, key);
  sock.send(pkt, Number(port ?? 7946), host);
  await Bun.sleep(every);
}
sock.close();
console.log(`sent ${n}`);
