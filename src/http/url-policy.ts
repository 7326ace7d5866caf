import { BlockList, isIP } from 'node:net';
import { domainToASCII } from 'node:url';
import { ItemError, UsageError } from '../errors.js';

/**
 * Loopback, private, link-local (cloud metadata at 169.254.169.254), unique-local, multicast and
 * other non-public ranges. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are matched as IPv4.
 */
export function privateRanges(): BlockList {
  const list = new BlockList();
  const v4: [string, number][] = [
    ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
    ['192.0.0.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 4], ['240.0.0.0', 4],
  ];
  const v6: [string, number][] = [['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8]];
  for (const [net, bits] of v4) list.addSubnet(net, bits, 'ipv4');
  for (const [net, bits] of v6) list.addSubnet(net, bits, 'ipv6');
  return list;
}

/** The error a refused address raises inside a connection attempt; classify.ts maps it to `blocked`. */
export const BLOCKED_ADDRESS = 'ERR_DOCSTOKG_BLOCKED_ADDRESS';

export function blockedAddressError(host: string, addresses: readonly string[]): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`${host} resolves only to non-public addresses (${addresses.join(', ')}); refused by --deny-private`);
  err.code = BLOCKED_ADDRESS;
  return err;
}

export function isBlockedAddress(ranges: BlockList, address: string): boolean {
  const family = isIP(address);
  if (family === 4) return ranges.check(address, 'ipv4');
  if (family !== 6) return false;
  if (ranges.check(address, 'ipv6')) return true;
  const inner = embeddedIpv4(address);
  return inner !== null && ranges.check(inner, 'ipv4');
}

/** The IPv4 address inside a NAT64 (64:ff9b::/96) or 6to4 (2002::/16) IPv6 address, if any. */
export function embeddedIpv4(address: string): string | null {
  // The URL parser gives the canonical form: lower-case hex groups, at most one `::`.
  const canonical = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  const [left, right] = canonical.includes('::') ? canonical.split('::') : [canonical, undefined];
  const head = left ? left.split(':') : [];
  const tail = right ? right.split(':') : [];
  const groups = [...head, ...Array<string>(8 - head.length - tail.length).fill('0'), ...tail].map((g) => parseInt(g, 16));
  const v4 = (hi: number, lo: number): string => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  if (groups[0] === 0x64 && groups[1] === 0xff9b && groups.slice(2, 6).every((g) => g === 0)) return v4(groups[6]!, groups[7]!);
  if (groups[0] === 0x2002) return v4(groups[1]!, groups[2]!);
  return null;
}

/** A host pattern from --allow-host / --deny-host: `example.org` (that host) or `*.example.org` (its subdomains). */
export function hostPattern(raw: string, flag: string): string {
  const wild = raw.startsWith('*.');
  const ascii = domainToASCII(wild ? raw.slice(2) : raw);
  if (ascii === '' || !/^[a-z0-9.-]+$/.test(ascii)) throw new UsageError(`${flag}: not a host name: ${JSON.stringify(raw)} (use "example.org" or "*.example.org")`);
  return wild ? `*.${ascii}` : ascii;
}

function matches(patterns: readonly string[], host: string): boolean {
  return patterns.some((p) => (p.startsWith('*.') ? host.endsWith(p.slice(1)) : host === p));
}

export interface UrlPolicyOptions {
  allowHost: readonly string[];
  denyHost: readonly string[];
  denyPrivate: boolean;
}

/**
 * Which URLs may be requested at all: checked for the first URL and again for every redirect hop,
 * before anything is sent. Names are checked again after DNS resolution by the connection's lookup
 * (see dns-cache.ts), so a public name that resolves to a private address is refused too.
 */
export class UrlPolicy {
  readonly ranges: BlockList | null;
  private readonly allow: string[];
  private readonly deny: string[];
  constructor(opts: UrlPolicyOptions, ranges: BlockList = privateRanges()) {
    this.allow = opts.allowHost.map((h) => hostPattern(h, '--allow-host'));
    this.deny = opts.denyHost.map((h) => hostPattern(h, '--deny-host'));
    this.ranges = opts.denyPrivate ? ranges : null;
  }

  check(url: URL): void {
    const host = url.hostname.replace(/^\[|\]$/g, '');
    if (matches(this.deny, host)) throw new ItemError('blocked', `${host} is refused by --deny-host`);
    if (this.allow.length > 0 && !matches(this.allow, host)) throw new ItemError('blocked', `${host} is not in --allow-host`);
    if (this.ranges && isBlockedAddress(this.ranges, host)) throw new ItemError('blocked', `${host} is not a public address; refused by --deny-private`);
  }
}
