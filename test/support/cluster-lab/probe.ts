/**
 * Lab helper (tests, benchmark): the client's probe. Sends a numbered UDP datagram to VIP:PORT
 * every INTERVAL ms for at most DURATION ms, and prints one line per answer:
 * "<absolute ms> <node that answered> <seq>" (absolute ms = performance.timeOrigin + now(), so
 * other processes can compare). Bounded in count and time; exits by itself.
 *
 *   bun test/support/cluster-lab/probe.ts VIP PORT INTERVAL_MS DURATION_MS
 */

const [vip, portText, intervalText, durationText] = process.argv.slice(2);
if (vip === undefined || portText === undefined || intervalText === undefined || durationText === undefined) {
  console.error("usage: probe.ts VIP PORT INTERVAL_MS DURATION_MS");
  process.exit(2);
}
const port = Number(portText);
const interval = Math.max(1, Number(intervalText));
const duration = Math.min(30 * 60_000, Number(durationText));
const abs = () => performance.timeOrigin + performance.now();
const dec = new TextDecoder();
let out = "";
const flush = () => {
  if (out !== "") {
    process.stdout.write(out);
    out = "";
  }
};
const sock = await Bun.udpSocket({
  binaryType: "uint8array",
  socket: {
    data(_s, buf) {
      const [node, seq] = dec.decode(buf).split(" ");
      out += `${abs().toFixed(1)} ${node} ${seq}\n`;
    },
    error() {},
  },
});
let seq = 0;
const end = performance.now() + duration;
const maxCount = Math.ceil(duration / interval) + 1;
const timer = setInterval(() => {
  if (performance.now() >= end || seq >= maxCount) {
    clearInterval(timer);
    setTimeout(() => {
      flush();
      sock.close();
      process.exit(0);
    }, 200);
    return;
  }
  try {
    sock.send(String(seq++), port, vip);
  } catch {
    // No route or no neighbour yet: the gap shows it.
  }
  flush();
}, interval);
console.log(`${abs().toFixed(1)} start -1`);

export {};
