/**
 * A Map that also keeps its values grouped under secondary keys (`groupsOf`), so that the test
 * server answers per-service and per-node questions without scanning every record: with 10,000
 * instances a scan per read made a catalog of 1,000 services cost seconds per sync.
 * Group keys are computed on set; a value must not change its groups while stored (replace it).
 */
export class IndexedMap<V> extends Map<string, V> {
  private readonly groups = new Map<string, Map<string, V>>();
  /** Moves on every set, delete and clear: what a cache of the values (e.g. sorted) keys on. */
  version = 0;

  constructor(private readonly groupsOf: (value: V) => readonly string[]) {
    super();
  }

  override set(key: string, value: V): this {
    const old = super.get(key);
    if (old !== undefined) this.ungroup(key, old);
    this.version += 1;
    super.set(key, value);
    for (const group of this.groupsOf(value)) {
      let members = this.groups.get(group);
      if (members === undefined) {
        members = new Map();
        this.groups.set(group, members);
      }
      members.set(key, value);
    }
    return this;
  }

  override delete(key: string): boolean {
    const old = super.get(key);
    if (old === undefined) return false;
    this.ungroup(key, old);
    this.version += 1;
    return super.delete(key);
  }

  override clear(): void {
    this.groups.clear();
    this.version += 1;
    super.clear();
  }

  /** The values stored under a group key, in insertion order (empty if none). */
  group(group: string): IterableIterator<V> {
    return (this.groups.get(group) ?? new Map<string, V>()).values();
  }

  groupSize(group: string): number {
    return this.groups.get(group)?.size ?? 0;
  }

  private ungroup(key: string, value: V): void {
    for (const group of this.groupsOf(value)) {
      const members = this.groups.get(group);
      members?.delete(key);
      if (members?.size === 0) this.groups.delete(group);
    }
  }
}
