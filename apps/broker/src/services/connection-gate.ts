// Who may open a socket before saying hello. A socket that has not said
// hello yet costs memory and a timer for up to HELLO_TIMEOUT_MS: their
// number is capped per instance and per client address, and an address
// whose hellos keep being refused is turned away for a while. An IPv6
// address counts by its /64: one host usually holds all of that block and
// could otherwise dodge the limits by taking a new address each time.
import { ipv6Groups } from "./ipv6.ts";
import { refuse, type Refusal } from "./outcome.ts";
import { RateLimiter } from "./rate-limit.ts";
import type { Clock } from "./timing.ts";

export interface GateOptions {
  maxPending: number;
  maxPendingPerAddress: number;
  failuresPerAddressPerMin: number;
  clock: Clock;
}

/** The key a client address counts under: an IPv6 address's /64, any other address (an IPv4-mapped one too) itself. */
export function addressKey(address: string): string {
  const groups = ipv6Groups(address);
  const mapped = groups !== null && groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff;
  if (groups === null || mapped) return address;
  return `${groups.slice(0, 4).map((g) => g.toString(16)).join(":")}::/64`;
}

export class ConnectionGate {
  private pending = 0;
  private readonly pendingByAddress = new Map<string, number>();
  private readonly failures: RateLimiter;
  /** Hellos being checked or admitted, by address; each is a pending socket, so this is bounded as they are. */
  private readonly underWay = new Map<string, number>();

  constructor(private readonly options: GateOptions) {
    this.failures = new RateLimiter(options.failuresPerAddressPerMin);
  }

  /** A socket from this address asks to open. Null: it may, and counts as pending until settled(). */
  open(client: string): Refusal<"capacity" | "rate_limited"> | null {
    const address = addressKey(client);
    if (this.failures.exhausted(address, this.options.clock())) {
      return refuse("rate_limited", "too many refused hellos from this address; try again in a minute");
    }
    if (this.pending >= this.options.maxPending) return refuse("capacity", "too many connections are waiting for their hello");
    const mine = this.pendingByAddress.get(address) ?? 0;
    if (mine >= this.options.maxPendingPerAddress) {
      return refuse("capacity", "too many connections from this address are waiting for their hello");
    }
    this.pending++;
    this.pendingByAddress.set(address, mine + 1);
    return null;
  }

  /** The socket's hello was admitted, or it closed before one. */
  settled(client: string): void {
    const address = addressKey(client);
    this.pending--;
    const mine = (this.pendingByAddress.get(address) ?? 1) - 1;
    if (mine <= 0) this.pendingByAddress.delete(address);
    else this.pendingByAddress.set(address, mine);
  }

  /**
   * A hello of this address is about to be checked and admitted. Once its
   * address has had a hello refused, the hellos under way count against the
   * refusals it has left: a burst of sockets opened before that refusal
   * could otherwise all have their hellos checked (a signature, the
   * database) and refused, many times the limit. False: refuse it unchecked.
   */
  helloBegins(client: string): boolean {
    const address = addressKey(client);
    const refused = this.failures.used(address, this.options.clock());
    const underWay = this.underWay.get(address) ?? 0;
    if (refused > 0 && refused + underWay >= this.options.failuresPerAddressPerMin) return false;
    this.underWay.set(address, underWay + 1);
    return true;
  }

  /** The hello helloBegins let through was admitted or refused. */
  helloEnded(client: string): void {
    const address = addressKey(client);
    const underWay = (this.underWay.get(address) ?? 1) - 1;
    if (underWay <= 0) this.underWay.delete(address);
    else this.underWay.set(address, underWay);
  }

  /** The socket's hello was refused: it counts against its address. */
  refused(client: string): void {
    this.failures.allow(addressKey(client), this.options.clock());
  }

  prune(): void {
    this.failures.prune(this.options.clock());
  }
}
