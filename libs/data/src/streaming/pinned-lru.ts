/**
 * A least-recently-used map bounded by a byte budget, whose entries can be pinned: a pinned entry
 * is never evicted, so the budget is exceeded rather than pulling data from under a reader when
 * everything is in use (it is trimmed back as soon as pins are released). Used for shard files on
 * disk and for parsed shards in memory.
 */
interface LruEntry<V> {
  value: V;
  bytes: number;
  pins: number;
}

export class PinnedLru<V> {
  // A Map iterates in insertion order: re-inserting on use keeps the oldest first.
  private readonly entries = new Map<string, LruEntry<V>>();
  private total = 0;

  constructor(
    readonly maxBytes: number,
    private readonly onEvict: (key: string, value: V) => void = () => {},
  ) {
    if (!(maxBytes >= 0)) throw new Error(`LRU byte limit must be non-negative, got ${maxBytes}`);
  }

  get size(): number {
    return this.entries.size;
  }

  get totalBytes(): number {
    return this.total;
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** The value without marking it used. */
  peek(key: string): V | undefined {
    return this.entries.get(key)?.value;
  }

  /** The value, marked most recently used. */
  use(key: string): V | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    this.entries.delete(key);
    this.entries.set(key, e);
    return e.value;
  }

  /** Adds or replaces an entry as the most recently used, keeping its pins; then trims. */
  set(key: string, value: V, bytes: number): void {
    const old = this.entries.get(key);
    if (old) {
      this.entries.delete(key);
      this.total -= old.bytes;
    }
    this.entries.set(key, { value, bytes, pins: old?.pins ?? 0 });
    this.total += bytes;
    this.trim();
  }

  /** Pins an entry against eviction; false when there is none. */
  pin(key: string): boolean {
    const e = this.entries.get(key);
    if (!e) return false;
    e.pins++;
    return true;
  }

  /** Releases one pin, and enforces the budget again. */
  unpin(key: string): void {
    const e = this.entries.get(key);
    if (!e || e.pins === 0) return;
    e.pins--;
    this.trim();
  }

  /** Removes an entry without calling `onEvict`. */
  delete(key: string): V | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    this.entries.delete(key);
    this.total -= e.bytes;
    return e.value;
  }

  /** Evicts unpinned entries, oldest first, until the total fits the budget or only pinned ones remain. */
  trim(): void {
    if (this.total <= this.maxBytes) return;
    for (const [key, e] of [...this.entries]) {
      if (this.total <= this.maxBytes) break;
      if (e.pins > 0) continue;
      this.entries.delete(key);
      this.total -= e.bytes;
      this.onEvict(key, e.value);
    }
  }
}
