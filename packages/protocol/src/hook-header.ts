// Apart from hook.ts and free of zod: the hook forwarder, which Claude Code
// waits for on every prompt, loads this alone.

/** Header a hook command may use to pass its parent's pid ($PPID). */
export const HOOK_PID_HEADER = "x-switchboard-pid";
