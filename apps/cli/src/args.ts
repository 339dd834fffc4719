// Argument parsing on node:util parseArgs. Every command declares its own
// options on top of the global ones; values are read through small typed
// accessors so commands never touch parseArgs' loose value types.
import { parseArgs } from "node:util";
import { UsageError } from "./errors.ts";

export interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
  multiple?: boolean;
}
export type OptionSpecs = Record<string, OptionSpec>;
type Value = string | boolean | Array<string | boolean> | undefined;

export const GLOBAL_OPTIONS: OptionSpecs = {
  url: { type: "string" },
  "admin-token": { type: "string" },
  key: { type: "string" },
  config: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
};

export class Args {
  constructor(
    readonly positionals: string[],
    private readonly values: Record<string, Value>,
  ) {}

  string(name: string): string | undefined {
    const v = this.values[name];
    if (Array.isArray(v)) return v.length > 0 ? String(v[v.length - 1]) : undefined;
    return typeof v === "string" ? v : undefined;
  }

  /**
   * As string, but a value given empty (`--mesh "$MESH"` with MESH unset) is
   * a usage error (`why` says what may have left it empty): taken for unset
   * it would fall back to another source, and kept it would be written into
   * an install or sent for the broker to refuse.
   */
  nonEmpty(name: string, why = ""): string | undefined {
    const value = this.string(name);
    if (value === "") throw new UsageError(`--${name} is empty${why === "" ? "" : ` (${why})`}`);
    return value;
  }

  strings(name: string): string[] {
    const v = this.values[name];
    if (Array.isArray(v)) return v.map(String);
    return typeof v === "string" ? [v] : [];
  }

  flag(name: string): boolean {
    return this.values[name] === true;
  }

  /** A positive integer option, or undefined when absent. */
  positiveInt(name: string): number | undefined {
    return this.wholeNumber(name, 1, "a positive integer");
  }

  /** A whole number option of 0 or more, or undefined when absent. */
  nonNegativeInt(name: string): number | undefined {
    return this.wholeNumber(name, 0, "a whole number of 0 or more");
  }

  private wholeNumber(name: string, min: number, what: string): number | undefined {
    const raw = this.string(name);
    if (raw === undefined) return undefined;
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n < min) throw new UsageError(`--${name} must be ${what}, not "${raw}"`);
    return n;
  }

  /** A string option of 1 to `max` characters, or undefined when absent. */
  boundedString(name: string, max: number): string | undefined {
    const raw = this.string(name);
    if (raw === undefined) return undefined;
    if (raw.length < 1 || raw.length > max) throw new UsageError(`--${name} must be 1 to ${max} characters, not ${raw.length}`);
    return raw;
  }

  /** An option restricted to a set of words. */
  oneOf<T extends string>(name: string, allowed: readonly T[]): T | undefined {
    const raw = this.string(name);
    if (raw === undefined) return undefined;
    if (!(allowed as readonly string[]).includes(raw)) {
      throw new UsageError(`--${name} must be one of ${allowed.join(", ")}, not "${raw}"`);
    }
    return raw as T;
  }
}

function parseError(error: unknown): never {
  const message = error instanceof Error ? error.message : String(error);
  // parseArgs appends advice about "--" that does not fit one line; keep the finding.
  throw new UsageError(message.replace(/\. To specify a positional argument[\s\S]*$/, ""));
}

/** Strict parse of argv with the global options plus the command's own. */
export function parseCommandArgs(argv: string[], options: OptionSpecs): Args {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options: { ...GLOBAL_OPTIONS, ...options },
      allowPositionals: true,
      strict: true,
    });
    return new Args(positionals, values as Record<string, Value>);
  } catch (error) {
    parseError(error);
  }
}

/**
 * The positional words of argv without knowing the command yet: every
 * option any command takes is declared, so option values are never
 * mistaken for command words. An option no command takes is refused here;
 * one the command found does not take is left to the strict parse.
 */
export function leadingWords(argv: string[], allOptions: OptionSpecs): string[] {
  const options = { ...allOptions, ...GLOBAL_OPTIONS };
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: false, tokens: true });
  } catch (error) {
    parseError(error);
  }
  // An option no command takes would be read as a flag, and the word after it as a command word.
  const unknown = parsed.tokens.find((t) => t.kind === "option" && !Object.hasOwn(options, t.name));
  if (unknown?.kind === "option") throw new UsageError(`Unknown option '${unknown.rawName}'${dashHint(argv[unknown.index])}`);
  return parsed.positionals;
}

/**
 * For an argument that is no option's shape (a text "-5 degrees", a name
 * "-x"), how to pass it: parseArgs' own advice to use "--" is left out of
 * its messages (parseError), and a text starting with "-" needs it.
 */
function dashHint(arg: string | undefined): string {
  if (arg === undefined || /^--[a-z][a-z0-9-]*(=.*)?$/i.test(arg)) return "";
  return ` (to pass ${JSON.stringify(arg)} as an argument, put it after --)`;
}
