export * from "./admin-client.ts";
export * from "./backend.ts";
export * from "./broker-process.ts";
export * from "./markers.ts";
export * from "./peer.ts";
export * from "./ports.ts";
export * from "./postgres-cluster.ts";
export * from "./test-broker.ts";
