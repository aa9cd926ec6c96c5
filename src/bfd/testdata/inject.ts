/**
 * Sends one crafted BFD Control packet with a chosen IP TTL, for tests of the TTL rules (RFC 5881
 * §5: single-hop receivers drop anything but 255): run inside a test namespace,
 * `bun inject.ts DST PORT TTL HEX`. Exits 0 once the datagram is handed to the kernel.
 */

const [dst, port, ttl, hex] = process.argv.slice(2);
if (!dst || !port || !ttl || !hex) {
  console.error("usage: inject.ts DST PORT TTL HEX");
  process.exit(2);
}
const bytes = Uint8Array.from(hex.match(/../g)!.map((b) => Number.parseInt(b, 16)));
const sock = await Bun.udpSocket({ hostname: dst.includes(":") ? "::" : "0.0.0.0", port: 0 });
sock.setTTL(Number(ttl));
if (!sock.send(bytes, Number(port), dst)) {
  console.error("send failed");
  process.exit(1);
}
await Bun.sleep(20);
sock.close();

export {};
