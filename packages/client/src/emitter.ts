import { SwitchboardError } from "./errors.ts";

type Listener<Args extends unknown[]> = (...args: Args) => void;

/** Typed events. A throwing listener never breaks the socket handler: its error goes to "error" listeners. */
export class Emitter<Events extends { [K in keyof Events]: unknown[] } & { error: [SwitchboardError] }> {
  private readonly listeners = new Map<keyof Events, Set<Listener<never[]>>>();

  on<K extends keyof Events>(event: K, fn: Listener<Events[K]>): () => void {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    const stored = fn as unknown as Listener<never[]>;
    set.add(stored);
    return () => {
      set.delete(stored);
    };
  }

  /** Whether anything listens for `event`. */
  has(event: keyof Events): boolean {
    return (this.listeners.get(event)?.size ?? 0) > 0;
  }

  /** Calls every listener of `event`; false when one of them threw. */
  emit<K extends keyof Events>(event: K, ...args: Events[K]): boolean {
    const set = this.listeners.get(event);
    if (!set) return true;
    let returned = true;
    for (const fn of [...set]) {
      // Removed by a listener before it meanwhile: it has stopped listening.
      if (!set.has(fn)) continue;
      try {
        (fn as unknown as Listener<Events[K]>)(...args);
      } catch (error) {
        returned = false;
        if (event === "error") continue;
        const wrapped = new SwitchboardError("listener_error", `a "${String(event)}" listener threw`, { cause: error });
        (this.emit as (e: "error", err: SwitchboardError) => boolean)("error", wrapped);
      }
    }
    return returned;
  }
}
