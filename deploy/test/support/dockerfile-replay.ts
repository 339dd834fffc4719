// Replays a Dockerfile on this machine, where no image can be built or run:
// each stage gets an empty directory standing in for its filesystem, COPY
// copies exactly what it names (from the build context less .dockerignore,
// or, as hard links, from an earlier stage), RUN runs in the stage's working
// directory, and the final stage's CMD and HEALTHCHECK run there as an
// unprivileged user.
// The base images are not fetched: this machine's Bun stands in for theirs.
// An instruction the replay cannot reproduce faithfully is refused.
// One file past 300 lines: the build (one switch over the instructions) and
// the container it yields share the stage and image types and nothing else
// uses them.
import {
  DockerfileParser,
  type Copy,
  type Env,
  type Flag,
  type From,
  type Instruction,
  type JSONInstruction,
  type ModifiableInstruction,
} from "dockerfile-ast";
import type { Subprocess } from "bun";
import { chmodSync, cpSync, existsSync, lstatSync, mkdirSync, readFileSync } from "node:fs";
import { basename, dirname, join, posix, relative } from "node:path";
import { DockerIgnore } from "./dockerignore.ts";

export interface Stage {
  readonly name: string;
  /** Stands in for the stage's "/". */
  readonly root: string;
  workdir: string;
  env: Record<string, string>;
  user: string | null;
}

export interface HealthcheckSpec {
  argv: string[];
  intervalMs: number;
  timeoutMs: number;
  startPeriodMs: number;
  retries: number;
}

export interface BuiltImage {
  readonly final: Stage;
  readonly cmd: string[];
  readonly healthcheck: HealthcheckSpec | null;
  readonly stopSignal: NodeJS.Signals;
  readonly exposed: number[];
}

export interface BuildOptions {
  /** The Dockerfile's text. */
  dockerfile: string;
  context: string;
  /** Empty directory the stages are built in. */
  workDir: string;
  buildArgs?: Record<string, string>;
  /**
   * Finished stages by their instructions: an identical stage of a later
   * build reuses the directory instead of running again (it must still exist).
   */
  stageCache?: Map<string, string>;
}

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

function durationMs(flag: Flag | undefined, fallbackMs: number): number {
  const value = flag?.getValue();
  if (!value) return fallbackMs;
  const m = value.match(DURATION);
  if (!m) throw new Error(`unsupported duration ${value}`);
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

function expand(text: string, vars: Record<string, string>): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (_, a: string | undefined, b: string | undefined) => {
    const name = (a ?? b)!;
    const value = vars[name];
    if (value === undefined) throw new Error(`variable ${name} is not defined at this point of the Dockerfile`);
    return value;
  });
}

function jsonStrings(instruction: Instruction): string[] | null {
  const json = instruction as JSONInstruction;
  return json.getOpeningBracket?.() ? json.getJSONStrings().map((s) => s.getJSONValue()) : null;
}

/** An exec-form (JSON) argument list, or a shell form run by /bin/sh -c as Docker does. */
function commandOf(instruction: Instruction, shellText: string | null): string[] {
  const exec = jsonStrings(instruction);
  if (exec) return exec;
  if (!shellText) throw new Error(`${instruction.getKeyword()} without a command`);
  return ["/bin/sh", "-c", shellText];
}

function flagsOf(instruction: Instruction, allowed: string[]): Map<string, Flag> {
  const flags = new Map<string, Flag>();
  for (const flag of (instruction as ModifiableInstruction).getFlags()) {
    if (!allowed.includes(flag.getName())) {
      throw new Error(`the replay does not support ${instruction.getKeyword()} --${flag.getName()}`);
    }
    flags.set(flag.getName(), flag);
  }
  return flags;
}

function assignment(text: string): [string, string | undefined] {
  const at = text.indexOf("=");
  return at < 0 ? [text, undefined] : [text.slice(0, at), text.slice(at + 1)];
}

async function run(argv: string[], cwd: string, env: Record<string, string>): Promise<void> {
  const proc = Bun.spawn(argv, { cwd, env, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`RUN ${argv.join(" ")} exited ${code}\n${out}\n${err}`);
}

/** The instructions of each stage, after the ARGs that come before the first FROM. */
function splitStages(instructions: Instruction[]): { globals: Instruction[]; stages: Instruction[][] } {
  const globals: Instruction[] = [];
  const stages: Instruction[][] = [];
  for (const instruction of instructions) {
    if (instruction.getKeyword() === "FROM") stages.push([instruction]);
    else if (stages.length > 0) stages.at(-1)!.push(instruction);
    else if (instruction.getKeyword() === "ARG") globals.push(instruction);
    else throw new Error(`${instruction.getKeyword()} before the first FROM`);
  }
  if (stages.length === 0) throw new Error("no FROM in the Dockerfile");
  return { globals, stages };
}

// Hard links: a stage's files (node_modules: 170 MB in 11,000 files) are the same
// bytes in every build, and the image's user cannot write to them, so a link
// is as good as a copy at a fraction of its cost.
function copyFromStage(path: string, target: string, isDir: boolean): void {
  const done = Bun.spawnSync(["cp", "-a", "--link", isDir ? `${path}/.` : path, target], { stderr: "pipe" });
  if (done.exitCode !== 0) throw new Error(`COPY --from: cp exited ${done.exitCode}: ${done.stderr.toString()}`);
}

export async function buildImage(options: BuildOptions): Promise<BuiltImage> {
  const dockerfile = DockerfileParser.parse(options.dockerfile);
  const ignorePath = join(options.context, ".dockerignore");
  const ignore = new DockerIgnore(existsSync(ignorePath) ? readFileSync(ignorePath, "utf8") : "");
  const inContext = (path: string) => !ignore.excludes(relative(options.context, path).split("\\").join("/"));
  const hostEnv = { PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin", HOME: process.env.HOME ?? "/root" };

  const { globals, stages: stageInstructions } = splitStages(dockerfile.getInstructions());
  const globalArgs: Record<string, string> = {};
  for (const arg of globals) {
    const [name, value] = assignment(arg.getArgumentsContent() ?? "");
    globalArgs[name] = options.buildArgs?.[name] ?? value ?? "";
  }

  const stages = new Map<string, Stage>();
  let image: BuiltImage | null = null;
  for (const [index, instructions] of stageInstructions.entries()) {
    const from = instructions[0] as From;
    const base = expand(from.getImage() ?? "", globalArgs);
    if (stages.has(base)) throw new Error(`the replay does not support FROM an earlier stage (${base})`);
    const key = [`FROM ${base}`, ...instructions.slice(1).map((i) => i.toString())].join("\n");
    const cached = options.stageCache?.get(key);
    const name = from.getBuildStage() ?? String(index);
    const stage: Stage = { name, root: cached ?? join(options.workDir, `stage-${index}-${name}`), workdir: "/", env: {}, user: null };
    mkdirSync(stage.root, { recursive: true });
    chmodSync(stage.root, 0o755);
    const args: Record<string, string> = {};
    const inStage = (path: string) => join(stage.root, posix.resolve(stage.workdir, path));
    let cmd: string[] | null = null;
    let healthcheck: HealthcheckSpec | null = null;
    let stopSignal: NodeJS.Signals = "SIGTERM";
    const exposed: number[] = [];

    const copy = (instruction: Copy, vars: Record<string, string>) => {
      const flags = flagsOf(instruction, ["from"]);
      const parts = (jsonStrings(instruction) ?? instruction.getArguments().map((a) => a.getValue())).map((p) => expand(p, vars));
      const dest = parts.pop();
      if (dest === undefined || parts.length === 0) throw new Error(`COPY without a source: ${instruction.toString()}`);
      if (parts.some((p) => /[*?[]/.test(p))) throw new Error(`the replay does not support wildcards: ${instruction.toString()}`);
      if (parts.length > 1 && !dest.endsWith("/")) throw new Error(`COPY of several sources needs a directory ending in /: ${instruction.toString()}`);
      const fromName = flags.get("from")?.getValue() ?? undefined;
      const source = fromName === undefined ? null : stages.get(fromName);
      if (fromName !== undefined && !source) throw new Error(`COPY --from=${fromName}: no such stage`);
      for (const part of parts) {
        const path = source ? join(source.root, posix.resolve("/", part)) : join(options.context, posix.normalize(part));
        if (!existsSync(path) || (!source && !inContext(path))) {
          throw new Error(`COPY: ${part} is not in ${source ? `stage ${fromName}` : "the build context"}`);
        }
        const isDir = lstatSync(path).isDirectory();
        const target = isDir || !dest.endsWith("/") ? inStage(dest) : join(inStage(dest), basename(path));
        mkdirSync(isDir ? target : dirname(target), { recursive: true });
        if (source) copyFromStage(path, target, isDir);
        else cpSync(path, target, { recursive: true, verbatimSymlinks: true, filter: inContext });
      }
    };

    for (const instruction of instructions.slice(1)) {
      const keyword = instruction.getKeyword();
      const content = instruction.getArgumentsContent();
      const vars = { ...globalArgs, ...args, ...stage.env };
      switch (keyword) {
        case "ARG": {
          const [argName, value] = assignment(content ?? "");
          args[argName] = options.buildArgs?.[argName] ?? (value === undefined ? (globalArgs[argName] ?? "") : expand(value, vars));
          break;
        }
        case "ENV":
          for (const property of (instruction as Env).getProperties()) {
            stage.env[property.getName()] = expand(property.getValue() ?? "", vars);
          }
          break;
        case "WORKDIR":
          stage.workdir = posix.resolve(stage.workdir, expand(content ?? "/", vars));
          mkdirSync(inStage("."), { recursive: true });
          break;
        // A stage taken from the cache already holds what its COPY and RUN made.
        case "COPY":
          if (!cached) copy(instruction as Copy, vars);
          break;
        case "RUN":
          if (stage.user !== null) throw new Error("the replay runs RUN as root only");
          if (!cached) await run(commandOf(instruction, content), inStage("."), { ...hostEnv, ...args, ...stage.env });
          break;
        case "USER":
          stage.user = expand(content ?? "", vars);
          break;
        case "EXPOSE":
          exposed.push(...instruction.getArguments().map((a) => Number.parseInt(a.getValue(), 10)));
          break;
        case "STOPSIGNAL":
          stopSignal = (content ?? "") as NodeJS.Signals;
          break;
        case "CMD":
          cmd = commandOf(instruction, content);
          break;
        case "HEALTHCHECK": {
          const flags = flagsOf(instruction, ["interval", "timeout", "start-period", "retries"]);
          const command = (content ?? "").replace(/^CMD\s+/i, "");
          if (command === content) throw new Error("the replay supports HEALTHCHECK CMD only");
          healthcheck = {
            argv: command.startsWith("[") ? (JSON.parse(command) as string[]) : ["/bin/sh", "-c", command],
            intervalMs: durationMs(flags.get("interval"), 30_000),
            timeoutMs: durationMs(flags.get("timeout"), 30_000),
            startPeriodMs: durationMs(flags.get("start-period"), 0),
            retries: Number(flags.get("retries")?.getValue() ?? 3),
          };
          break;
        }
        case "LABEL":
          break;
        default:
          throw new Error(`the replay does not support ${keyword}`);
      }
    }
    if (!cached) options.stageCache?.set(key, stage.root);
    stages.set(name, stage);
    image = cmd === null ? null : { final: stage, cmd, healthcheck, stopSignal, exposed };
  }
  if (image === null) throw new Error("the final stage has no CMD");
  return image;
}

export interface Container {
  readonly proc: Subprocess<"ignore", "pipe", "pipe">;
  output(): string;
  /** Runs the HEALTHCHECK until it passes; throws if the CMD exits first or Docker would have given up. */
  healthy(): Promise<void>;
  /** Sends the STOPSIGNAL; resolves with the exit code, or "timeout" after timeoutMs. */
  stop(timeoutMs: number): Promise<number | "timeout">;
}

function uidOf(user: string): { uid: number; gid: number } | null {
  const out = Bun.spawnSync(["id", "-u", user]);
  if (out.exitCode !== 0) return null;
  const gid = Bun.spawnSync(["id", "-g", user]).stdout.toString().trim();
  return { uid: Number(out.stdout.toString().trim()), gid: Number(gid) };
}

/**
 * As `docker run`: the final stage's CMD in its working directory with its
 * ENV plus runtimeEnv, as its USER. That user must not be root; where it does
 * not exist on this machine, `nobody` stands in for it.
 */
export function startContainer(image: BuiltImage, runtimeEnv: Record<string, string>): Container {
  const { final } = image;
  if (final.user === null || final.user === "root" || final.user === "0") throw new Error("the image runs as root");
  const cwd = join(final.root, final.workdir);
  let prefix: string[] = [];
  if (process.getuid?.() === 0) {
    const ids = uidOf(final.user) ?? uidOf("nobody");
    if (!ids || ids.uid === 0) throw new Error("no unprivileged user to run the image as");
    prefix = ["setpriv", `--reuid=${ids.uid}`, `--regid=${ids.gid}`, "--clear-groups", "--"];
  }
  const env = { PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin", HOME: "/nonexistent", ...final.env, ...runtimeEnv };
  const proc = Bun.spawn([...prefix, ...image.cmd], { cwd, env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  let output = "";
  const decoder = new TextDecoder();
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) output += decoder.decode(chunk, { stream: true });
  };
  void drain(proc.stdout);
  void drain(proc.stderr);
  let exitCode: number | null = null;
  void proc.exited.then((code) => (exitCode = code));

  return {
    proc,
    output: () => output,
    async healthy() {
      const check = image.healthcheck;
      if (!check) throw new Error("the image has no HEALTHCHECK");
      // Docker's patience: the start period, then `retries` failed checks.
      const until = Date.now() + check.startPeriodMs + check.retries * check.intervalMs;
      for (;;) {
        if (exitCode !== null) throw new Error(`CMD exited with ${exitCode} before its HEALTHCHECK passed:\n${output}`);
        const probe = Bun.spawn([...prefix, ...check.argv], { cwd, env, stdout: "ignore", stderr: "ignore", timeout: check.timeoutMs });
        if ((await probe.exited) === 0) return;
        if (Date.now() > until) throw new Error(`HEALTHCHECK still failing after ${check.retries} retries:\n${output}`);
        await Bun.sleep(250);
      }
    },
    async stop(timeoutMs) {
      proc.kill(image.stopSignal);
      return Promise.race([proc.exited, Bun.sleep(timeoutMs).then(() => "timeout" as const)]);
    },
  };
}
