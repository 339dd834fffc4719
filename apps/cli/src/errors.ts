// The two ways a command fails: a usage error (exit 2) or anything else (exit 1).
export class UsageError extends Error {}

export class CliError extends Error {}
