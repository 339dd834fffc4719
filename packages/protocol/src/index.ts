export * from "./admin.ts";
export * from "./curve.ts";
export * from "./frames.ts";
export * from "./hook.ts";
export * from "./http.ts";
export * from "./issues.ts";
export * from "./server-frames.ts";
export * from "./signing.ts";
