/**
 * Sends one crafted BFD Control packet with a chosen IP TTL / IPv6 hop limit, for tests of the TTL
 * rules (RFC 5881 §5: single-hop receivers drop anything but 255): run inside a test namespace,
 * `bun inject.ts DST PORT TTL HEX`. Uses vipd's own TxSocket (IPV6_UNICAST_HOPS for IPv6).
 * Exits 0 once the datagram is handed to the kernel.
 */

import { TxSocket } from "../../../src/bfd/io.ts";

const [dst, port, ttl, hex] = process.argv.slice(2);
if (!dst || !port || !ttl || !hex) {
  console.error("usage: inject.ts DST PORT TTL HEX");
  process.exit(2);
}
const bytes = Uint8Array.from(hex.match(/../g)!.map((b) => Number.parseInt(b, 16)));
const sock = await TxSocket.open(dst.includes(":") ? 6 : 4, undefined, undefined, () => {}, Number(ttl));
if (!sock.send(bytes, Number(port), dst)) {
  console.error("send failed");
  process.exit(1);
}
await Bun.sleep(20);
sock.close();
