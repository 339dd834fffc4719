// The broker's admin HTTP API (docs/protocol.md, "Admin API"): one typed call per route.
// A non-2xx answer becomes a CliError carrying the broker's own message.
import {
  UUID,
  type IssuedToken,
  type MemberView,
  type MeshView,
  type PresenceView,
  type RevokedToken,
  type TokenView,
  type WebhookStateView,
} from "@switchboard/protocol";
import { httpBase } from "./config.ts";
import { CliError, REQUEST_TIMEOUT_MS } from "./errors.ts";
import { asPubkey } from "./target.ts";

const seg = encodeURIComponent;

function describeFailure(status: number, text: string): string {
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    const { code, message } = body.error ?? {};
    if (typeof message === "string") return typeof code === "string" ? `${message} (${code})` : message;
  } catch {
    // not the admin error shape; fall through to the raw text
  }
  return `HTTP ${status}${text ? `: ${text.slice(0, 200)}` : ""}`;
}

export class AdminApi {
  private readonly base: string;

  constructor(
    url: string,
    private readonly token: string,
  ) {
    this.base = httpBase(url);
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}` };
    if (body !== undefined) headers["content-type"] = "application/json";
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (error) {
      if (error instanceof Error && error.name === "TimeoutError") {
        throw new CliError(`the broker at ${this.base} did not answer within ${REQUEST_TIMEOUT_MS / 1000} s`);
      }
      const reason = error instanceof Error ? error.message : String(error);
      throw new CliError(`cannot reach the broker at ${this.base}: ${reason}`);
    }
    const text = await res.text();
    if (!res.ok) throw new CliError(describeFailure(res.status, text));
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new CliError(`the broker answered ${method} ${path} with something that is not JSON`);
    }
  }

  createMesh(slug: string, name?: string): Promise<MeshView> {
    return this.call("POST", "/v1/meshes", name === undefined ? { slug } : { slug, name });
  }

  async listMeshes(): Promise<MeshView[]> {
    return (await this.call<{ meshes: MeshView[] }>("GET", "/v1/meshes")).meshes;
  }

  addMember(
    mesh: string,
    body: { pubkey: string; displayName: string; tags?: string[]; role?: "member" | "observer" },
  ): Promise<MemberView> {
    return this.call("POST", `/v1/meshes/${seg(mesh)}/members`, body);
  }

  async listMembers(mesh: string): Promise<MemberView[]> {
    return (await this.call<{ members: MemberView[] }>("GET", `/v1/meshes/${seg(mesh)}/members`)).members;
  }

  revokeMember(mesh: string, member: string): Promise<{ id: string; revokedAt: string }> {
    return this.call("DELETE", `/v1/meshes/${seg(mesh)}/members/${seg(member)}`);
  }

  createToken(mesh: string, member: string, kind: "hook" | "api"): Promise<IssuedToken> {
    return this.call("POST", `/v1/meshes/${seg(mesh)}/members/${seg(member)}/tokens`, { kind });
  }

  async listTokens(mesh: string, member: string): Promise<TokenView[]> {
    return (await this.call<{ tokens: TokenView[] }>("GET", `/v1/meshes/${seg(mesh)}/members/${seg(member)}/tokens`)).tokens;
  }

  revokeToken(mesh: string, member: string, tokenId: string): Promise<RevokedToken> {
    return this.call("DELETE", `/v1/meshes/${seg(mesh)}/members/${seg(member)}/tokens/${seg(tokenId)}`);
  }

  setWebhook(mesh: string, member: string, body: { url: string; secret: string }): Promise<WebhookStateView> {
    return this.call("PUT", `/v1/meshes/${seg(mesh)}/members/${seg(member)}/webhook`, body);
  }

  getWebhook(mesh: string, member: string): Promise<WebhookStateView> {
    return this.call("GET", `/v1/meshes/${seg(mesh)}/members/${seg(member)}/webhook`);
  }

  deleteWebhook(mesh: string, member: string): Promise<WebhookStateView> {
    return this.call("DELETE", `/v1/meshes/${seg(mesh)}/members/${seg(member)}/webhook`);
  }

  async peers(mesh: string): Promise<PresenceView[]> {
    return (await this.call<{ peers: PresenceView[] }>("GET", `/v1/meshes/${seg(mesh)}/peers`)).peers;
  }

  /**
   * A member reference as the routes take it (id, or pubkey in lowercase, as
   * send takes one written in either case). Anything else is taken as a
   * display name and looked up among the mesh's active members.
   */
  async memberRef(mesh: string, ref: string): Promise<string> {
    if (UUID.test(ref)) return ref;
    const pubkey = asPubkey(ref);
    if (pubkey !== undefined) return pubkey;
    const named = (await this.listMembers(mesh)).filter((m) => m.displayName === ref && m.revokedAt === null);
    if (named.length === 1 && named[0] !== undefined) return named[0].id;
    if (named.length === 0) throw new CliError(`no active member named "${ref}" in mesh ${mesh}`);
    throw new CliError(`${named.length} active members are named "${ref}" in mesh ${mesh}; use the id or pubkey`);
  }
}
