// Seeded generation of hostile input: valid-looking frames and bodies with
// one thing wrong — a field of the wrong type, huge or deeply nested values,
// prototype keys, text Postgres cannot store, numbers out of range, unknown
// or missing fields — plus raw garbage. The same seed gives the same inputs.

/** A small, fast, seeded PRNG (mulberry32). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Fuzz {
  readonly random: () => number;

  constructor(seed: number) {
    this.random = seededRandom(seed);
  }

  int(max: number): number {
    return Math.floor(this.random() * max);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  /** A value of any JSON type, or one chosen to break a parser or a database. */
  nasty(depth = 0): unknown {
    const kinds = [
      () => null,
      () => true,
      () => this.int(2) === 0 ? -1 : 0,
      () => 2 ** 53 + 1,
      () => 1e308,
      () => -2147483649,
      () => 0.5,
      () => "",
      () => "x".repeat(this.pick([1, 64, 65, 129, 4097, 70_000])),
      () => "\u0000nul",
      () => "lone \ud800 surrogate",
      () => "\udfff",
      () => "💥".repeat(40),
      () => "__proto__",
      () => "constructor",
      () => "toString",
      () => "#",
      () => "tag:",
      () => "*",
      () => "0".repeat(64),
      () => "f".repeat(128),
      () => crypto.randomUUID(),
      () => [],
      () => (depth < 3 ? [this.nasty(depth + 1), this.nasty(depth + 1)] : []),
      () => (depth < 3 ? { [this.pick(["__proto__", "constructor", "a", "type"])]: this.nasty(depth + 1) } : {}),
      () => deep(this.pick([10, 200, 500])),
    ];
    return this.pick(kinds)();
  }

  /** The template with one field replaced, removed, or an unknown one added — or two at once. */
  mutate(template: Record<string, unknown>): Record<string, unknown> {
    const out: Record<string, unknown> = { ...template };
    const keys = Object.keys(template);
    const changes = 1 + this.int(2);
    for (let i = 0; i < changes; i++) {
      const roll = this.int(10);
      const key = this.pick(keys);
      if (roll < 6) out[key] = this.nasty();
      else if (roll < 8) delete out[key];
      else Object.defineProperty(out, this.pick(["__proto__", "constructor", "prototype", "extra"]), {
        value: this.nasty(),
        enumerable: true,
        configurable: true,
        writable: true,
      });
    }
    return out;
  }

  /** A text frame that is not even a JSON object, or a JSON document of the wrong shape. */
  garbage(): string {
    return this.pick([
      () => "",
      () => "{",
      () => "null",
      () => "[]",
      () => "42",
      () => '"a string"',
      () => "{}",
      () => '{"type":null}',
      () => '{"__proto__":{"type":"ping"}}',
      () => '{"type":"ping","reqId":' + "[".repeat(3000) + "]".repeat(3000) + "}",
      () => '{"a":'.repeat(20_000) + "1" + "}".repeat(20_000),
      () => "\ud800",
      () => Buffer.from(Array.from({ length: 64 }, () => this.int(256))).toString("latin1"),
    ])();
  }
}

/** An object nested n levels deep. */
function deep(levels: number): unknown {
  let value: unknown = 1;
  for (let i = 0; i < levels; i++) value = { a: value };
  return value;
}
