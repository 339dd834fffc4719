// What the broker runs SQL on, whichever backend is under it.
import type { Statement } from "./statement.ts";

/** Something that runs SQL: the database itself or an open transaction. */
export interface Executor {
  rows<T>(query: Statement): Promise<T[]>;
}

export interface Database extends Executor {
  readonly kind: "postgres" | "embedded";
  /**
   * Runs statements whose commit does not wait for the WAL to reach disk
   * (synchronous_commit off). Only for writes whose loss in a crash is
   * harmless: a lease or an ack that is lost only causes a redelivery.
   */
  readonly relaxed: Executor;
  transaction<T>(work: (tx: Executor) => Promise<T>): Promise<T>;
  /**
   * From now on a connection that owes answers and hears nothing from the
   * server for `seconds` is closed as lost, and the pool's idle ones with
   * it (a failover or a partition leaves them open, silent, for as long as
   * TCP takes to give up: many minutes). Set once migrations are done: one
   * may run, or wait for another instance's, for longer. PGlite, in this
   * process, has no connections to lose.
   */
  closeSilentConnectionsAfter(seconds: number): void;
  /** Subscribes on the dedicated listening connection; onListen runs after every (re)subscribe. */
  listen(channel: string, onNotify: (payload: string) => void, onListen?: () => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}
