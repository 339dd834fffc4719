// Bodies of the admin API (/v1, bearer ADMIN_TOKEN).
import { z } from "zod";
import { isEd25519PublicKey } from "./curve.ts";
import { PUBKEY, TAG, storable } from "./frames.ts";

export const SLUG = /^[a-z0-9][a-z0-9-]{1,62}$/;

/** An id's shape (any case). A hello names its mesh by id or slug, and takes anything shaped like an id for one. */
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const createMeshBody = z.strictObject({
  slug: z
    .string()
    .regex(SLUG, { error: "expected 2–63 of a-z, 0-9 and -, starting with a letter or digit" })
    .refine((slug) => !UUID.test(slug), { error: "a slug may not look like a mesh id (a uuid)" }),
  name: storable(z.string().min(1).max(200)).optional(),
});

export const addMemberBody = z.strictObject({
  pubkey: z
    .string()
    .regex(PUBKEY, { error: "expected 64 lowercase hex characters", abort: true })
    // Such a member could never pass a signed hello, and no message to it could be sealed.
    .refine(isEd25519PublicKey, { error: "not an ed25519 public key (it names no point of the curve, or one of small order: no key pair has it)" }),
  displayName: storable(z.string().min(1).max(128)),
  tags: z.array(z.string().regex(TAG, { error: "expected letters, digits, . _ : - (at most 64)" })).max(64).optional(),
  role: z.enum(["member", "observer"]).optional(),
});

export const createTokenBody = z.strictObject({ kind: z.enum(["hook", "api"]) });

/** What an issued token starts with, by kind: secret scanners and people tell the kinds apart from other secrets by it. */
export const TOKEN_PREFIX = { hook: "sbh_", api: "sba_" } as const satisfies Record<z.infer<typeof createTokenBody>["kind"], string>;

export type CreateMeshBody = z.infer<typeof createMeshBody>;
export type AddMemberBody = z.infer<typeof addMemberBody>;

export interface MeshView {
  id: string;
  slug: string;
  name: string;
}

export interface MemberView {
  id: string;
  pubkey: string;
  displayName: string;
  tags: string[];
  role: "member" | "observer";
  revokedAt: string | null;
}

/** A token as the admin API lists it: never its secret, which only its issue shows. */
export interface TokenView {
  id: string;
  kind: "hook" | "api";
  createdAt: string;
  revokedAt: string | null;
}

/** A token as its revocation answers it. */
export interface RevokedToken extends TokenView {
  revokedAt: string;
}

/** The answer to a token's issue: the secret, shown this once, and the id that revokes it. */
export interface IssuedToken extends TokenView {
  token: string;
}

export interface PresenceView {
  presenceId: string;
  memberId: string;
  pubkey: string;
  displayName: string;
  sessionId: string;
  status: "idle" | "working" | "dnd";
  statusSource: "hook" | "manual" | "jsonl";
  pid: number | null;
  cwd: string | null;
  connectedAt: string;
  instanceId: string;
}

/** The error body of every /v1 route (and what a client reading one checks it against). */
export const apiErrorBody = z.object({ error: z.object({ code: z.string(), message: z.string() }) });
export type AdminError = z.infer<typeof apiErrorBody>;
