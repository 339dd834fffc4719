import { SwitchboardError } from "./errors.ts";

type Listener<Args extends unknown[]> = (...args: Args) => void;

/** Typed events. A throwing listener (or an async one that rejects) never breaks the socket handler: its error goes to "error" listeners. */
export class Emitter<Events extends { [K in keyof Events]: unknown[] } & { error: [SwitchboardError] }> {
  private readonly listeners = new Map<keyof Events, Set<Listener<never[]>>>();

  /** `ended`: once true, an async listener's late rejection is not reported (the owner's last event was told). */
  constructor(private readonly ended: () => boolean = () => false) {}

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
        const result: unknown = (fn as unknown as Listener<Events[K]>)(...args);
        // An async listener's rejection is its throw, come later: reported,
        // not left unhandled, which would end the process.
        if (result instanceof Promise) {
          result.catch((error: unknown) => {
            if (!this.ended()) this.listenerFailed(event, error);
          });
        }
      } catch (error) {
        returned = false;
        this.listenerFailed(event, error);
      }
    }
    return returned;
  }

  /** A listener's failure, as an `error` event; an error listener's own is dropped (reporting it would loop). */
  private listenerFailed(event: keyof Events, error: unknown): void {
    if (event === "error") return;
    const wrapped = new SwitchboardError("listener_error", `a "${String(event)}" listener threw`, { cause: error });
    (this.emit as (e: "error", err: SwitchboardError) => boolean)("error", wrapped);
  }
}
