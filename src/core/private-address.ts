// The addresses that requests the server makes on a client's behalf (webhooks, server-side pulls) may not
// reach unless the operator allows it: private, loopback, link-local (cloud metadata), CGNAT, multicast,
// reserved, and the IPv4-mapped forms of them.
import { BlockList, isIP } from "node:net";

const blocked = new BlockList();
for (const [net, bits] of [
  ["0.0.0.0", 8], ["10.0.0.0", 8], ["100.64.0.0", 10], ["127.0.0.0", 8], ["169.254.0.0", 16], ["172.16.0.0", 12],
  ["192.0.0.0", 24], ["192.0.2.0", 24], ["192.168.0.0", 16], ["198.18.0.0", 15], ["198.51.100.0", 24],
  ["203.0.113.0", 24], ["224.0.0.0", 4], ["240.0.0.0", 4],
] as const) blocked.addSubnet(net, bits, "ipv4");
// IPv4 rules also match IPv4-mapped IPv6 (::ffff:a.b.c.d), so those need no entry of their own.
for (const [net, bits] of [
  ["::", 128], ["::1", 128], ["64:ff9b:1::", 48], ["100::", 64], ["2001:db8::", 32], ["fc00::", 7], ["fe80::", 10], ["fec0::", 10], ["ff00::", 8],
] as const) blocked.addSubnet(net, bits, "ipv6");

/** True for addresses a webhook or a server-side pull may not reach unless the operator allows private targets. */
export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return true;
  // IPv4-compatible IPv6 (::a.b.c.d, deprecated) reaches the IPv4 address on some stacks.
  if (family === 6 && /^::[0-9a-f]{1,4}:[0-9a-f]{1,4}$/i.test(address)) return true;
  return blocked.check(address, family === 4 ? "ipv4" : "ipv6");
}
