// Holds chosen statements of a broker on Postgres for a while, so a test can
// act while one is under way: a trigger that sleeps (or waits until the test
// lets it go) after inserting a presence of one session, or a message with
// one ciphertext. The statement
// has done its work by then (the presence ended the one it replaces, the
// message is written) and has not committed. Or fails such a statement (as
// a refusal, or as a full disk would), or the hold of a waiting request's
// replies.
import postgres from "postgres";

export type SlowInsert = { presenceSession: string } | { messageCiphertext: string };

/** Sleeps `seconds` in the statement that inserts the row; the returned function takes the trigger away. */
export function sleepOnInsert(databaseUrl: string, what: SlowInsert, seconds: number): Promise<() => Promise<void>> {
  return onInsert(databaseUrl, what, `PERFORM pg_sleep(${seconds})`);
}

/**
 * Holds the statement that inserts the row until `release` is called: it
 * waits for an advisory lock this function holds, so the test, not a
 * sleep's length, decides how long. `release` also takes the trigger away.
 */
export async function holdOnInsert(databaseUrl: string, what: SlowInsert): Promise<{ release: () => Promise<void> }> {
  const key = Math.floor(Math.random() * 2 ** 31);
  const holder = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  let untrigger: (() => Promise<void>) | undefined;
  try {
    await holder`SELECT pg_advisory_lock(${key})`;
    untrigger = await onInsert(databaseUrl, what, `PERFORM pg_advisory_xact_lock(${key})`);
  } catch (error) {
    await holder.end();
    throw error;
  }
  const drop = untrigger;
  return {
    release: async () => {
      try {
        await holder`SELECT pg_advisory_unlock(${key})`;
      } finally {
        await holder.end();
        await drop();
      }
    },
  };
}

/** Whether a statement of this database waits for a lock holdOnInsert holds. */
export function someoneHeld(databaseUrl: string): Promise<boolean> {
  return someoneWaitsFor(databaseUrl, "advisory");
}

/** Fails the statement that inserts the row (a refusal that is no lost connection); the returned function takes the trigger away. */
export function failOnInsert(databaseUrl: string, what: SlowInsert): Promise<() => Promise<void>> {
  return onInsert(databaseUrl, what, `RAISE EXCEPTION 'refused by the test'`);
}

/**
 * Fails every statement that inserts a message as a database out of disk
 * space does (SQLSTATE 53100, disk_full); the returned function takes the
 * trigger away.
 */
export function refuseMessagesForWantOfSpace(databaseUrl: string): Promise<() => Promise<void>> {
  return onChange(databaseUrl, "messages", "INSERT", "true", `RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full'`);
}

/**
 * Fails the statement that holds a message's replies for a request waiting
 * for them (it counts the waits in messages.reply_waits): the wait of a
 * `?wait` request, after its message was stored. The returned function takes
 * the trigger away.
 */
export function failReplyHolds(databaseUrl: string): Promise<() => Promise<void>> {
  return onChange(databaseUrl, "messages", "UPDATE", "NEW.reply_waits IS DISTINCT FROM OLD.reply_waits", `RAISE EXCEPTION 'refused by the test'`);
}

function onInsert(databaseUrl: string, what: SlowInsert, action: string): Promise<() => Promise<void>> {
  const [table, condition] =
    "presenceSession" in what ? ["presences", `NEW.session_id = '${what.presenceSession}'`] : ["messages", `NEW.ciphertext = '${what.messageCiphertext}'`];
  return onChange(databaseUrl, table, "INSERT", condition, action);
}

async function onChange(databaseUrl: string, table: string, event: "INSERT" | "UPDATE", condition: string, action: string): Promise<() => Promise<void>> {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  const name = `on_${event.toLowerCase()}_${crypto.randomUUID().replaceAll("-", "")}`;
  try {
    await sql.unsafe(`
      CREATE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF ${condition} THEN ${action}; END IF;
        RETURN NULL;
      END $$;
      CREATE TRIGGER ${name} AFTER ${event} ON ${table} FOR EACH ROW EXECUTE FUNCTION ${name}();`);
  } catch (error) {
    await sql.end();
    throw error;
  }
  return async () => {
    try {
      await sql.unsafe(`DROP TRIGGER ${name} ON ${table}; DROP FUNCTION ${name}();`);
    } finally {
      await sql.end();
    }
  };
}

/** Whether a statement of this database is in such a sleep now. */
export function someoneSleeps(databaseUrl: string): Promise<boolean> {
  return someoneWaitsFor(databaseUrl, "PgSleep");
}

async function someoneWaitsFor(databaseUrl: string, waitEvent: "PgSleep" | "advisory"): Promise<boolean> {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event = ${waitEvent} AND datname = current_database()`;
    return (row?.n ?? 0) > 0;
  } finally {
    await sql.end();
  }
}
