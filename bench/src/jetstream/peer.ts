// A load-generator peer on NATS JetStream: it publishes to the recipient's
// subject (msgID = the send's id, so a retry is de-duplicated as ours is) and
// consumes its own durable pull consumer, acking each message explicitly.
import { connect, type ConsumerMessages, type JetStreamClient, type NatsConnection } from "nats";
import { now } from "../clock.ts";
import { readStamp, stamped, type LoadPeer, type PeerHooks, type Stamp } from "../peer.ts";

/** Messages the consumer's client buffers ahead: the broker's push window per presence. */
const PULL_BATCH = 512;

export class JetStreamPeer implements LoadPeer {
  private constructor(
    readonly address: string,
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly subjectPrefix: string,
    private readonly hooks: PeerHooks,
    private readonly messages: ConsumerMessages,
  ) {}

  static async connect(url: string, stream: string, subjectPrefix: string, address: string, hooks: PeerHooks): Promise<JetStreamPeer> {
    const nc = await connect({ servers: url, name: address, maxReconnectAttempts: 0 });
    const js = nc.jetstream();
    const consumer = await js.consumers.get(stream, address);
    const messages = await consumer.consume({ max_messages: PULL_BATCH });
    const peer = new JetStreamPeer(address, nc, js, subjectPrefix, hooks, messages);
    void peer.receive();
    return peer;
  }

  private async receive(): Promise<void> {
    const decoder = new TextDecoder();
    for await (const m of this.messages) {
      this.hooks.onPush(String(m.info.streamSequence), readStamp(decoder.decode(m.data)), m.info.deliveryCount);
      m.ack();
    }
  }

  send(to: string): Stamp {
    const { stamp, payload } = stamped();
    this.js.publish(`${this.subjectPrefix}.${to}`, payload, { msgID: stamp.id }).then(
      (ack) => this.hooks.onAck(stamp.id, String(ack.seq), ack.duplicate, now()),
      (error: unknown) => this.hooks.onError(stamp.id, String((error as { code?: unknown }).code ?? "publish_failed")),
    );
    return stamp;
  }

  close(): void {
    this.messages.stop();
    void this.nc.drain();
  }
}
