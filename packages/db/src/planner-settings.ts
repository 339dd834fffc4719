// Both pools plan each prepared statement once per connection, and keep the
// plan until Postgres invalidates it (an ANALYZE of a table it reads). Each
// statement reaches its rows by index probes, written so that no plan of it
// can do otherwise: batch inputs carry LIMIT n, rows updated are named by id
// in a list rather than joined back to their table, and a sequential scan is
// planned only where no index serves. A plan can be made while the
// statistics say a table is empty (a quiet deployment's tables, pruned,
// vacuumed and analyzed), where a scan costs nothing: planned then, the send
// statement read every presence, delivery and message for each send, and an
// ack, a claim and a requeue the whole deliveries table, until the next
// ANALYZE (pool-plans.test.ts holds both pools' statements to this). Planned
// at every call instead, the claims and acks cost as much in planning as in
// execution, and met such statistics as badly.
// Neither compiles a plan to machine code (JIT): the broker's statements read
// few rows, and a compile costs tens of milliseconds, paid again at every run
// of a statement whose estimate passes jit_above_cost (a housekeeping prune
// over a large table did, every tick).
export const PLANNER_SETTINGS = { plan_cache_mode: "force_generic_plan", enable_seqscan: "off", jit: "off" } as const;
