// Every session of a broker instance names it (application_name, seen in
// pg_stat_activity), so that the instance that reaps it can end them.
// Postgres keeps 63 bytes of the name and turns what is not printable ASCII
// into '?': made within both, the name reads back exactly as it was sent.
const PREFIX = "switchboard ";
const MAX_BYTES = 63;
// An instance id ends in what sets it apart (…-<pid>-<random>): a name that
// must be shortened loses the middle of a long host name instead.
const KEPT_TAIL = 24;

export function applicationNameOf(instanceId: string): string {
  const printable = instanceId.replace(/[^\x20-\x7e]/g, "?");
  const room = MAX_BYTES - PREFIX.length;
  if (printable.length <= room) return PREFIX + printable;
  return `${PREFIX}${printable.slice(0, room - KEPT_TAIL - 1)}~${printable.slice(-KEPT_TAIL)}`;
}
