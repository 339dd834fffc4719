export * from "./backend.ts";
export * from "./broker-process.ts";
export * from "./ports.ts";
export * from "./postgres-cluster.ts";
