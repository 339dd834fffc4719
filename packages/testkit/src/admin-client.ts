// The broker's admin HTTP API (/v1, bearer ADMIN_TOKEN) for tests: typed
// helpers that throw on any non-2xx answer, plus raw() for testing errors.
import type { IssuedToken, PresenceView, RevokedToken, TokenView } from "@switchboard/protocol";
import { newIdentity, type TestIdentity } from "./peer.ts";

export interface MeshInfo {
  id: string;
  slug: string;
  name: string;
}

export interface MemberInfo {
  id: string;
  pubkey: string;
  displayName: string;
}

export interface AddMemberInput {
  pubkey: string;
  displayName: string;
  tags?: string[];
  role?: "member" | "observer";
}

/** A non-2xx answer of the admin API. */
export class AdminError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    readonly body: string,
  ) {
    super(`${method} ${path} → ${status}: ${body}`);
    this.name = "AdminError";
  }
}

const seg = (s: string) => encodeURIComponent(s);

/**
 * How long one request may take, answer and body. A broker that never
 * answers (its handler stuck, a database stall) then fails the test's call
 * with the request named, not the whole test at its own timeout with
 * nothing said.
 */
const REQUEST_TIMEOUT_MS = 60_000;

export class AdminClient {
  readonly baseUrl: string;
  readonly token: string;

  constructor(
    baseUrl: string,
    token: string,
    private readonly timeoutMs = REQUEST_TIMEOUT_MS,
  ) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.token = token;
  }

  /**
   * One request, answer untouched. body: a string is sent verbatim (for malformed-JSON
   * tests), anything else as JSON. token: undefined → the client's token, null → no
   * Authorization header, a string → that bearer token.
   */
  async raw(method: string, path: string, body?: unknown, token?: string | null): Promise<Response> {
    const headers: Record<string, string> = {};
    const bearer = token === undefined ? this.token : token;
    if (bearer !== null) headers.authorization = `Bearer ${bearer}`;
    let payload: string | undefined;
    if (body !== undefined) {
      headers["content-type"] = "application/json";
      payload = typeof body === "string" ? body : JSON.stringify(body);
    }
    // A connection per request: one kept alive across a long test can be
    // closed by the broker's idle timeout just as the next request goes out
    // on it, which then fails with ECONNRESET.
    const signal = AbortSignal.timeout(this.timeoutMs);
    try {
      return await fetch(`${this.baseUrl}${path}`, { method, headers, body: payload, keepalive: false, signal });
    } catch (error) {
      if (signal.aborted) throw new Error(`${method} ${path}: no answer within ${this.timeoutMs} ms`, { cause: error });
      throw error;
    }
  }

  private async call(method: string, path: string, body?: unknown): Promise<unknown> {
    const res = await this.raw(method, path, body);
    const text = await res.text();
    if (!res.ok) throw new AdminError(method, path, res.status, text);
    if (text === "") return undefined;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new AdminError(method, path, res.status, `not JSON: ${text}`);
    }
  }

  async createMesh(slug: string, name?: string): Promise<MeshInfo> {
    const body: Record<string, string> = { slug };
    if (name !== undefined) body.name = name;
    return (await this.call("POST", "/v1/meshes", body)) as MeshInfo;
  }

  async addMember(mesh: string, input: AddMemberInput): Promise<MemberInfo> {
    return (await this.call("POST", `/v1/meshes/${seg(mesh)}/members`, input)) as MemberInfo;
  }

  async revokeMember(mesh: string, member: string): Promise<void> {
    await this.call("DELETE", `/v1/meshes/${seg(mesh)}/members/${seg(member)}`);
  }

  /** POST …/tokens: the token (shown once) with its id. */
  async issueToken(mesh: string, member: string, kind: "hook" | "api"): Promise<IssuedToken> {
    const answer = await this.call("POST", `/v1/meshes/${seg(mesh)}/members/${seg(member)}/tokens`, { kind });
    const token = (answer as { token?: unknown } | undefined)?.token;
    if (typeof token !== "string") throw new Error(`token answer without a token: ${JSON.stringify(answer)}`);
    return answer as IssuedToken;
  }

  async createHookToken(mesh: string, member: string): Promise<string> {
    return (await this.issueToken(mesh, member, "hook")).token;
  }

  async createApiToken(mesh: string, member: string): Promise<string> {
    return (await this.issueToken(mesh, member, "api")).token;
  }

  async listTokens(mesh: string, member: string): Promise<TokenView[]> {
    return ((await this.call("GET", `/v1/meshes/${seg(mesh)}/members/${seg(member)}/tokens`)) as { tokens: TokenView[] }).tokens;
  }

  async revokeToken(mesh: string, member: string, tokenId: string): Promise<RevokedToken> {
    return (await this.call("DELETE", `/v1/meshes/${seg(mesh)}/members/${seg(member)}/tokens/${seg(tokenId)}`)) as RevokedToken;
  }

  /** PUT …/webhook; answers the webhook's state. */
  async setWebhook(mesh: string, member: string, url: string, secret: string): Promise<Record<string, unknown>> {
    return (await this.call("PUT", `/v1/meshes/${seg(mesh)}/members/${seg(member)}/webhook`, { url, secret })) as Record<string, unknown>;
  }

  /** Live presences of the mesh; accepts a bare array or an object with a `peers` array. */
  async peers(mesh: string): Promise<PresenceView[]> {
    const answer = await this.call("GET", `/v1/meshes/${seg(mesh)}/peers`);
    if (Array.isArray(answer)) return answer as PresenceView[];
    const list = (answer as { peers?: unknown } | undefined)?.peers;
    if (Array.isArray(list)) return list as PresenceView[];
    throw new Error(`unexpected peers answer: ${JSON.stringify(answer)}`);
  }
}

export interface SetupMeshOptions {
  slug?: string;
  name?: string;
  /** A count (names member-1, member-2, …) or the display names. */
  members: number | string[];
  /** Tags by display name. */
  tags?: Record<string, string[]>;
}

export interface SetupMember {
  id: string;
  displayName: string;
  pubkey: string;
  identity: TestIdentity;
}

export interface SetupMeshResult {
  mesh: MeshInfo;
  members: SetupMember[];
}

export function randomSlug(): string {
  const hex = Array.from(crypto.getRandomValues(new Uint8Array(5)), (b) => b.toString(16).padStart(2, "0")).join("");
  return `m-${hex}`;
}

/** A new mesh (random slug unless given) with members of fresh identities, added in order. */
export async function setupMesh(admin: AdminClient, options: SetupMeshOptions): Promise<SetupMeshResult> {
  const mesh = await admin.createMesh(options.slug ?? randomSlug(), options.name);
  const names =
    typeof options.members === "number"
      ? Array.from({ length: options.members }, (_, i) => `member-${i + 1}`)
      : options.members;
  const members: SetupMember[] = [];
  for (const displayName of names) {
    const identity = await newIdentity();
    const input: AddMemberInput = { pubkey: identity.publicKey, displayName };
    const tags = options.tags?.[displayName];
    if (tags) input.tags = tags;
    const added = await admin.addMember(mesh.id, input);
    members.push({ id: added.id, displayName, pubkey: identity.publicKey, identity });
  }
  return { mesh, members };
}
