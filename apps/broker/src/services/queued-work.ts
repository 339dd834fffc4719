// Where news of queued work meets the consumers of the queue on this
// instance. Whoever makes work claimable (a commit here, a bus message from
// another instance, a status change, a requeue, a sweep) announces it here;
// every consumer (the socket pump, and any other) looks for what is its own.
export interface QueueConsumer {
  /** These members' queues may hold new work. */
  members(memberIds: readonly string[]): void;
  /** As members, for every member of these meshes. */
  meshes(meshIds: readonly string[]): void;
}

export class QueuedWork {
  private readonly consumers = new Set<QueueConsumer>();

  subscribe(consumer: QueueConsumer): () => void {
    this.consumers.add(consumer);
    return () => this.consumers.delete(consumer);
  }

  forMembers(memberIds: Iterable<string>): void {
    const ids = [...memberIds];
    if (ids.length === 0) return;
    for (const c of this.consumers) c.members(ids);
  }

  forMeshes(meshIds: Iterable<string>): void {
    const ids = [...meshIds];
    if (ids.length === 0) return;
    for (const c of this.consumers) c.meshes(ids);
  }
}
