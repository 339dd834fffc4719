// Named prepared statements on PGlite. Its query() parses and plans the
// statement at every call, in six calls into the WebAssembly backend; the
// send statement of one send took 6–10 ms that way, and the embedded broker's
// one thread spent most of its time planning. Here each statement text is
// parsed once, as a named statement the backend keeps with its plan (as
// postgres.js does for the Postgres pools), and each call is one call into
// the backend: bind, describe, execute and sync together.
import { parse, protocol, type PGlite } from "@electric-sql/pglite";

/** Statement texts kept prepared; past it a text runs as PGlite's own unnamed statement. */
const MAX_NAMED = 1000;

interface Named {
  name: string;
  /** Each parameter's type, as the backend inferred it: PGlite's serializers go by it. */
  paramTypes: number[];
}

const { serialize } = protocol;

/** Names are unique in the process: two of these on one client must not take each other's. */
let namesGiven = 0;

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

export class EmbeddedStatements {
  /** By text; a statement being prepared is its promise, so two first calls prepare it once. */
  private readonly named = new Map<string, Promise<Named>>();

  constructor(
    private readonly client: PGlite,
    private readonly maxNamed = MAX_NAMED,
  ) {}

  async rows<T>(text: string, params: unknown[]): Promise<T[]> {
    const named = this.namedFor(text);
    if (!named) return (await this.client.query<T>(text, params)).rows;
    const { name, paramTypes } = await named;
    const values = params.map((value, i) => this.serialized(value, paramTypes[i]));
    const { messages } = await this.exclusive(
      concat([serialize.bind({ statement: name, values }), serialize.describe({ type: "P" }), serialize.execute({}), serialize.sync()]),
    );
    return (parse.parseResults(messages, this.client.parsers)[0]?.rows ?? []) as T[];
  }

  private namedFor(text: string): Promise<Named> | null {
    const known = this.named.get(text);
    if (known) return known;
    if (this.named.size >= this.maxNamed) return null;
    const name = `switchboard_${++namesGiven}`;
    const prepared = this.exclusive(concat([serialize.parse({ name, text }), serialize.describe({ type: "S", name }), serialize.sync()])).then(
      ({ messages }) => ({ name, paramTypes: parse.parseDescribeStatementResults(messages) }),
    );
    this.named.set(text, prepared);
    // A text the backend refused is not kept: each call reports its error.
    prepared.catch(() => this.named.delete(text));
    return prepared;
  }

  // As PGlite's query() serializes a value: by its parameter's type, else as text.
  private serialized(value: unknown, type: number | undefined): string | null {
    if (value === null || value === undefined) return null;
    const serializer = type === undefined ? undefined : this.client.serializers[type];
    return serializer ? serializer(value) : String(value);
  }

  // Under the locks query() takes: never inside another caller's transaction,
  // never beside another statement.
  private async exclusive(message: Uint8Array) {
    await this.client._checkReady();
    return this.client._runExclusiveTransaction(() => this.client._runExclusiveQuery(() => this.client.execProtocol(message)));
  }
}
