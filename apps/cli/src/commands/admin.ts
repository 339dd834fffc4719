// Admin commands over the HTTP admin API: meshes, members, tokens, peers.
import { isEd25519PublicKey, PUBKEY, UUID } from "@switchboard/protocol";
import { AdminApi } from "../admin-api.ts";
import type { Command, Context } from "../command.ts";
import { operands } from "../command.ts";
import { requireAdminToken } from "../config.ts";
import { UsageError } from "../errors.ts";
import { oneLine, out, outJson, shortKey, table } from "../output.ts";

export function api(ctx: Context): AdminApi {
  const config = ctx.config();
  return new AdminApi(config.url, requireAdminToken(config));
}

export const meshCreate: Command = {
  words: ["mesh", "create"],
  usage: "<slug> [--name N]",
  summary: "create a mesh",
  options: { name: { type: "string" } },
  async run(ctx) {
    const [slug = ""] = operands(ctx, ["slug"]);
    const mesh = await api(ctx).createMesh(slug, ctx.args.string("name"));
    if (ctx.json) await outJson(mesh);
    else await out(`created mesh ${mesh.slug} (${mesh.id})`);
  },
};

export const meshList: Command = {
  words: ["mesh", "list"],
  usage: "",
  summary: "list meshes",
  options: {},
  async run(ctx) {
    operands(ctx, []);
    const meshes = await api(ctx).listMeshes();
    if (ctx.json) return void (await outJson(meshes));
    await out(table(["SLUG", "NAME", "ID"], meshes.map((m) => [m.slug, m.name, m.id])));
  },
};

export const memberAdd: Command = {
  words: ["member", "add"],
  usage: "<mesh> <pubkey> --name N [--tag T]... [--role member|observer]",
  summary: "enroll a public key in a mesh",
  options: { name: { type: "string" }, tag: { type: "string", multiple: true }, role: { type: "string" } },
  async run(ctx) {
    const [mesh = "", pubkey = ""] = operands(ctx, ["mesh", "pubkey"]);
    if (!PUBKEY.test(pubkey)) throw new UsageError(`<pubkey> must be 64 lowercase hex characters, not "${pubkey}"`);
    // A mistyped key is as likely to name no point as to name another key: the broker would refuse it, but it is the caller's to fix.
    if (!isEd25519PublicKey(pubkey)) throw new UsageError(`<pubkey> ${pubkey} is not an ed25519 public key (it names no point of the curve, or one of small order)`);
    const displayName = ctx.args.nonEmpty("name");
    if (displayName === undefined) throw new UsageError("--name N is required");
    const role = ctx.args.oneOf("role", ["member", "observer"] as const);
    const tags = ctx.args.strings("tag");
    const member = await api(ctx).addMember(mesh, {
      pubkey,
      displayName,
      ...(tags.length > 0 ? { tags } : {}),
      ...(role !== undefined ? { role } : {}),
    });
    if (ctx.json) await outJson(member);
    // One line, as every name the CLI prints: the broker takes line breaks and escapes in a name.
    else await out(`added ${oneLine(member.displayName)} (${member.id}) to ${mesh}`);
  },
};

export const memberRevoke: Command = {
  words: ["member", "revoke"],
  usage: "<mesh> <member>",
  summary: "revoke a member (id, pubkey or display name); its sockets close",
  options: {},
  async run(ctx) {
    const [mesh = "", ref = ""] = operands(ctx, ["mesh", "member"]);
    const client = api(ctx);
    const revoked = await client.revokeMember(mesh, await client.memberRef(mesh, ref));
    if (ctx.json) await outJson(revoked);
    else await out(`revoked ${revoked.id} at ${revoked.revokedAt}`);
  },
};

export const memberList: Command = {
  words: ["member", "list"],
  usage: "<mesh>",
  summary: "list the members of a mesh",
  options: {},
  async run(ctx) {
    const [mesh = ""] = operands(ctx, ["mesh"]);
    const members = await api(ctx).listMembers(mesh);
    if (ctx.json) return void (await outJson(members));
    const rows = members.map((m) => [
      m.displayName,
      m.role,
      m.tags.join(",") || "-",
      m.revokedAt === null ? "active" : `revoked ${m.revokedAt}`,
      m.pubkey,
      m.id,
    ]);
    await out(table(["NAME", "ROLE", "TAGS", "STATE", "PUBKEY", "ID"], rows));
  },
};

export const tokenCreate: Command = {
  words: ["token", "create"],
  usage: "<mesh> <member> [--kind hook|api]",
  summary: "issue a token for a member (shown once): hook (default) for /hook/set-status, api for the HTTP messaging API",
  options: { kind: { type: "string" } },
  async run(ctx) {
    const [mesh = "", ref = ""] = operands(ctx, ["mesh", "member"]);
    const kind = ctx.args.oneOf("kind", ["hook", "api"] as const) ?? "hook";
    const client = api(ctx);
    const issued = await client.createToken(mesh, await client.memberRef(mesh, ref), kind);
    // Printed alone, for $(…); its id is in --json and in `token list`.
    if (ctx.json) await outJson(issued);
    else await out(issued.token);
  },
};

export const tokenList: Command = {
  words: ["token", "list"],
  usage: "<mesh> <member>",
  summary: "list a member's tokens (never their secrets), revoked ones too",
  options: {},
  async run(ctx) {
    const [mesh = "", ref = ""] = operands(ctx, ["mesh", "member"]);
    const client = api(ctx);
    const tokens = await client.listTokens(mesh, await client.memberRef(mesh, ref));
    if (ctx.json) return void (await outJson(tokens));
    const rows = tokens.map((t) => [t.id, t.kind, t.createdAt, t.revokedAt === null ? "active" : `revoked ${t.revokedAt}`]);
    await out(table(["ID", "KIND", "CREATED", "STATE"], rows));
  },
};

export const tokenRevoke: Command = {
  words: ["token", "revoke"],
  usage: "<mesh> <member> <token-id>",
  summary: "revoke one of a member's tokens (its id from `token list`); the member and its other tokens stay",
  options: {},
  async run(ctx) {
    const [mesh = "", ref = "", id = ""] = operands(ctx, ["mesh", "member", "token-id"]);
    if (!UUID.test(id)) throw new UsageError(`<token-id> is a token's id from \`switchboard token list\`, not "${id}"`);
    const client = api(ctx);
    const revoked = await client.revokeToken(mesh, await client.memberRef(mesh, ref), id);
    if (ctx.json) await outJson(revoked);
    else await out(`revoked ${revoked.kind} token ${revoked.id} at ${revoked.revokedAt}`);
  },
};

export const peers: Command = {
  words: ["peers"],
  usage: "<mesh>",
  summary: "list the live presences of a mesh with their status",
  options: {},
  async run(ctx) {
    const [mesh = ""] = operands(ctx, ["mesh"]);
    const presences = await api(ctx).peers(mesh);
    if (ctx.json) return void (await outJson(presences));
    const rows = presences.map((p) => [
      p.displayName,
      shortKey(p.pubkey),
      p.sessionId,
      p.status,
      p.statusSource,
      p.pid === null ? "-" : String(p.pid),
      p.cwd ?? "-",
      p.connectedAt,
    ]);
    await out(table(["NAME", "KEY", "SESSION", "STATUS", "SOURCE", "PID", "CWD", "CONNECTED"], rows));
  },
};
