// Reads of one key (a mesh's live presences) asked for together are made
// once: hundreds of peers of a large mesh asking for its peer list or a
// presence snapshot at the same moment (each socket of a restarted instance
// coming back, say) each read the whole mesh, and held the database and the
// event loop for tens of seconds. A read under way is never handed to one
// who asked after it began, whose answer must show what it knew by then (a
// subscriber registered before its snapshot, a peer seen connected): those
// wait for the next read, which all of them share.

interface Slot<V> {
  current: Promise<V>;
  /** The read those who asked while `current` was under way share; begins when it settles. */
  next: Promise<V> | null;
}

const settled = () => {};

export class SharedReads<K, V> {
  private readonly slots = new Map<K, Slot<V>>();

  constructor(private readonly read: (key: K) => Promise<V>) {}

  /** A read of `key` begun after this call: at most one under way per key, and one waiting. */
  get(key: K): Promise<V> {
    const slot = this.slots.get(key);
    if (slot === undefined) return this.begin(key, null);
    slot.next ??= slot.current.then(settled, settled).then(() => {
      slot.next = null;
      return this.begin(key, slot);
    });
    return slot.next;
  }

  private begin(key: K, slot: Slot<V> | null): Promise<V> {
    const current = this.read(key);
    const mine = slot ?? { current, next: null };
    mine.current = current;
    if (slot === null) this.slots.set(key, mine);
    void current.then(settled, settled).then(() => {
      if (mine.current === current && mine.next === null) this.slots.delete(key);
    });
    return current;
  }
}
