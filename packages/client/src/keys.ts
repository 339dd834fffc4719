// Which key seals or opens a message: the pairwise key for a direct message
// (target is a pubkey), the configured symmetric key for anything else.
import { PUBKEY, targetSpecSchema } from "@switchboard/protocol";
import { associatedData, directKey, open, parseSymmetricKey, seal, type Envelope } from "./envelope.ts";
import { SwitchboardError } from "./errors.ts";

// Pairwise keys are cheap to derive again; the cache only spares the hot path.
const MAX_CACHED_DIRECT_KEYS = 1024;

/**
 * The target a channelKeys name stands for: `*`, `tag:name` and `#name` as
 * they are, and a bare name as the channel join() takes it for (ops → #ops),
 * since a key kept under a name no target has would never be used and the
 * messages it was meant for would go out plain.
 */
function keyTarget(name: string): string {
  const target = name === "*" || name.startsWith("tag:") || name.startsWith("#") ? name : `#${name}`;
  if (!targetSpecSchema.safeParse(target).success) {
    throw new SwitchboardError("invalid", `channelKeys: ${JSON.stringify(name)} is not *, #channel, channel or tag:name`);
  }
  return target;
}

export class KeyRing {
  private readonly direct = new Map<string, Uint8Array>();
  private readonly channel = new Map<string, Uint8Array>();

  constructor(
    private readonly secretKey: string,
    readonly publicKey: string,
    channelKeys: Record<string, string> = {},
  ) {
    for (const [name, hex] of Object.entries(channelKeys)) {
      const target = keyTarget(name);
      if (this.channel.has(target)) throw new SwitchboardError("invalid", `channelKeys: ${target} is named twice`);
      this.channel.set(target, parseSymmetricKey(hex, name));
    }
  }

  private directKeyWith(peer: string): Uint8Array {
    let key = this.direct.get(peer);
    if (!key) {
      if (this.direct.size >= MAX_CACHED_DIRECT_KEYS) this.direct.clear();
      key = directKey(this.secretKey, this.publicKey, peer);
      this.direct.set(peer, key);
    }
    return key;
  }

  /** channelKeys[target], else channelKeys["*"] (a mesh-wide key). */
  private channelKey(targetSpec: string): Uint8Array | null {
    return this.channel.get(targetSpec) ?? this.channel.get("*") ?? null;
  }

  /**
   * encrypt: undefined → encrypt when a key exists (always for direct messages);
   * true → a missing key is an error; false → plain.
   */
  sealFor(targetSpec: string, payload: unknown, encrypt?: boolean): Envelope {
    if (encrypt === false) return seal(payload, null, new Uint8Array());
    if (PUBKEY.test(targetSpec)) {
      return seal(payload, this.directKeyWith(targetSpec), associatedData(this.publicKey, targetSpec));
    }
    const key = this.channelKey(targetSpec);
    if (key === null && encrypt === true) throw new SwitchboardError("no_key", `no channel key for ${targetSpec}`);
    return seal(payload, key, associatedData(this.publicKey, targetSpec));
  }

  /** Whether a send to targetSpec goes sealed when its encrypt option is left out. */
  seals(targetSpec: string): boolean {
    return PUBKEY.test(targetSpec) || this.channelKey(targetSpec) !== null;
  }

  /** Opens a pushed envelope; throws SwitchboardError("decrypt_failed"). */
  openFrom(senderPubkey: string, targetSpec: string, envelope: Envelope): unknown {
    if (envelope.nonce === "plain") return open(envelope, null, new Uint8Array());
    if (PUBKEY.test(targetSpec)) {
      // Only a message to us is ours to open. Opened with the pair's key, one
      // we sent to another, handed back, would read as a message to us.
      if (targetSpec !== this.publicKey) throw new SwitchboardError("decrypt_failed", `a direct message to ${targetSpec}, not to this key`);
      let key: Uint8Array;
      try {
        key = this.directKeyWith(senderPubkey);
      } catch (error) {
        throw new SwitchboardError("decrypt_failed", `no key can be derived with ${senderPubkey}`, { cause: error });
      }
      return open(envelope, key, associatedData(senderPubkey, targetSpec));
    }
    const ad = associatedData(senderPubkey, targetSpec);
    const own = this.channel.get(targetSpec);
    const meshWide = this.channel.get("*");
    if (own === undefined || meshWide === undefined) return open(envelope, own ?? meshWide ?? null, ad);
    // A sender without this target's key seals with its mesh-wide one.
    try {
      return open(envelope, own, ad);
    } catch (error) {
      try {
        return open(envelope, meshWide, ad);
      } catch {
        throw error;
      }
    }
  }
}
