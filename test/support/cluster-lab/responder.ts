/**
 * Lab helper (tests, benchmark): a tiny UDP responder that answers every datagram with
 * "<node name> <the datagram>", so a client sees WHICH node answered. Bound to 0.0.0.0: with
 * local delivery, traffic to a VIP this node owns arrives here.
 *
 *   bun test/support/cluster-lab/responder.ts NODE PORT
 */

const [node, portText] = process.argv.slice(2);
if (node === undefined || portText === undefined) {
  console.error("usage: responder.ts NODE PORT");
  process.exit(2);
}
const prefix = new TextEncoder().encode(`${node} `);
await Bun.udpSocket({
  hostname: "0.0.0.0",
  port: Number(portText),
  binaryType: "uint8array",
  socket: {
    data(s, buf, port, addr) {
      const out = new Uint8Array(prefix.length + buf.length);
      out.set(prefix, 0);
      out.set(buf, prefix.length);
      // A send can fail at once (ENETUNREACH, EHOSTUNREACH: the node's link or routes just went
      // away and came back); Bun throws it here, and uncaught it would kill the service for good,
      // as a real one that drops a reply would not. Said on stderr, and the next datagram is served.
      try {
        s.send(out, port, addr);
      } catch (e) {
        console.error(`reply to ${addr}:${port} failed: ${(e as Error).message}`);
      }
    },
  },
});
console.log("ready");

export {};
