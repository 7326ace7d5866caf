/**
 * The leases one ledger connection wrote, by key: the owner and the expiry its claim or last
 * renewal stored. Another process can take a job only once the stored expiry has passed (or its
 * holder is dead), and each of these writes is committed atomically before anyone else can see an
 * older expiry, so asking here is the same as asking the table, without a query per request and
 * per write.
 */
export class LeaseCache {
  private readonly leases = new Map<string, { owner: string; expires: number }>();

  claimed(key: string, owner: string, expires: number): void {
    this.leases.set(key, { owner, expires });
  }

  /** After a renewal: the keys it extended get `expires`, the owner's others are no longer held. */
  renewed(owner: string, keys: ReadonlySet<string>, expires: number): void {
    for (const [key, lease] of this.leases) {
      if (lease.owner !== owner) continue;
      if (keys.has(key)) lease.expires = expires;
      else this.leases.delete(key);
    }
  }

  forget(key: string, owner?: string): void {
    if (owner === undefined || this.leases.get(key)?.owner === owner) this.leases.delete(key);
  }

  holds(key: string, owner: string, now: number): boolean {
    const lease = this.leases.get(key);
    return lease !== undefined && lease.owner === owner && lease.expires >= now;
  }

  clear(): void {
    this.leases.clear();
  }
}
