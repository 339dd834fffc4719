// The admin operations behind /v1: enrol meshes and members, issue, list and
// revoke hook and API tokens, revoke members, list live peers. Failures the
// caller can act on are thrown as RefusedError with a stable code; the
// transport maps codes to statuses.
import type { Database } from "@switchboard/db";
import type {
  AddMemberBody,
  CreateMeshBody,
  IssuedToken,
  MemberView,
  MeshView,
  PresenceView,
  RevokedToken,
  TokenView,
} from "@switchboard/protocol";
import type { Logger } from "../log.ts";
import {
  findMember,
  findMesh,
  insertMember,
  insertMesh,
  insertToken,
  listLivePeers,
  listMembers,
  listMeshes,
  listTokens,
  revokeMember,
  revokeToken,
} from "../store/directory.ts";
import { UUID } from "../store/sql.ts";
import type { InstanceBus } from "./bus.ts";
import { refuse, RefusedError } from "./outcome.ts";
import { leftEvents, type PresenceEvents } from "./presence-events.ts";
import { retryTransient } from "./retry.ts";
import { hashToken, newToken, type TokenKind } from "./tokens.ts";

export type AdminRefusalCode = "not_found" | "conflict";

const fail = (code: AdminRefusalCode, message: string) => new RefusedError(refuse(code, message));

export interface AdminDeps {
  db: Database;
  log: Logger;
  /** A revocation ends the member's presences: subscribers hear them leave even if no socket closes here. */
  events: PresenceEvents;
  /** Runs after a revocation committed, so this instance can close the member's sockets (4002). */
  onRevoked: (memberId: string) => void;
  /** Tells the other instances of a token's revocation, with its commit. */
  bus: InstanceBus;
  /** Runs after a token's revocation committed, so this instance forgets it. */
  onTokenRevoked: (tokenId: string) => void;
}

export function createAdminService({ db, log, events, onRevoked, bus, onTokenRevoked }: AdminDeps) {
  const mesh = async (ref: string): Promise<MeshView> => {
    const found = await findMesh(db, ref, UUID.test(ref));
    if (found === null) throw fail("not_found", `no mesh ${ref}`);
    return found;
  };

  const member = async (meshRef: string, memberRef: string): Promise<{ mesh: MeshView; member: MemberView }> => {
    const m = await mesh(meshRef);
    const found = await findMember(db, m.id, memberRef, UUID.test(memberRef));
    if (found === null) throw fail("not_found", `no member ${memberRef} in mesh ${m.slug}`);
    return { mesh: m, member: found };
  };

  return {
    async createMesh(body: CreateMeshBody): Promise<MeshView> {
      const created = await insertMesh(db, body.slug, body.name ?? body.slug);
      if (created === null) throw fail("conflict", `mesh slug ${body.slug} is taken`);
      log.info({ meshId: created.id, slug: created.slug }, "admin mesh created");
      return created;
    },

    listMeshes: (): Promise<MeshView[]> => listMeshes(db),

    async addMember(meshRef: string, body: AddMemberBody): Promise<MemberView> {
      const m = await mesh(meshRef);
      const created = await insertMember(db, m.id, {
        pubkey: body.pubkey,
        displayName: body.displayName,
        tags: body.tags ?? [],
        role: body.role ?? "member",
      });
      if (created === null) {
        throw fail("conflict", `pubkey ${body.pubkey} is already enrolled in ${m.slug} (a key is enrolled once; a revoked one stays revoked)`);
      }
      log.info({ meshId: m.id, memberId: created.id }, "admin member added");
      return created;
    },

    async listMembers(meshRef: string): Promise<MemberView[]> {
      return listMembers(db, (await mesh(meshRef)).id);
    },

    async revokeMember(meshRef: string, memberRef: string): Promise<{ id: string; revokedAt: string }> {
      const found = await member(meshRef, memberRef);
      // The instance holding a socket says `left` when it closes it; one that is
      // dead or stopping never will, so the revocation says it too (a
      // subscriber hears a presence leave once).
      // Run again when Postgres asks (a deadlock with a statement of another order).
      const { revokedAt, changed, left } = await retryTransient(() =>
        db.transaction(async (tx) => {
          const revocation = await revokeMember(tx, found.mesh.id, found.member.id);
          const left = leftEvents(revocation.presencesClosed);
          await events.announce(tx, left);
          return { ...revocation, left };
        }),
      );
      events.deliver(left);
      if (changed) log.info({ meshId: found.mesh.id, memberId: found.member.id }, "admin member revoked");
      // Also on a repeated revocation: closing a revoked member's sockets is
      // always right. The revocation is committed whatever happens here, so a
      // failing callback must not turn the reply into an error.
      try {
        onRevoked(found.member.id);
      } catch (error) {
        log.error({ err: error, memberId: found.member.id }, "revocation callback failed");
      }
      return { id: found.member.id, revokedAt };
    },

    async issueToken(meshRef: string, memberRef: string, kind: TokenKind): Promise<IssuedToken> {
      const found = await member(meshRef, memberRef);
      const revoked = () => fail("conflict", `member ${memberRef} is revoked`);
      if (found.member.revokedAt !== null) throw revoked();
      const token = newToken(kind);
      const issued = await insertToken(db, found.member.id, kind, hashToken(token));
      if (issued === null) throw revoked();
      log.info({ meshId: found.mesh.id, memberId: found.member.id, tokenId: issued.id, kind }, "admin token issued");
      return { token, ...issued };
    },

    async listTokens(meshRef: string, memberRef: string): Promise<TokenView[]> {
      return listTokens(db, (await member(meshRef, memberRef)).member.id);
    },

    /** Revokes one token of the member; a second revocation answers with the first's time. */
    async revokeToken(meshRef: string, memberRef: string, tokenId: string): Promise<RevokedToken> {
      const found = await member(meshRef, memberRef);
      const unknown = () => fail("not_found", `no token ${tokenId} of member ${memberRef}`);
      if (!UUID.test(tokenId)) throw unknown();
      const revocation = await retryTransient(() =>
        db.transaction(async (tx) => {
          const done = await revokeToken(tx, found.mesh.id, found.member.id, tokenId);
          if (done?.changed) await bus.publish(tx, { revokedTokens: [done.token.id] });
          return done;
        }),
      );
      if (revocation === null) throw unknown();
      if (revocation.changed) log.info({ meshId: found.mesh.id, memberId: found.member.id, tokenId, kind: revocation.token.kind }, "admin token revoked");
      onTokenRevoked(revocation.token.id);
      return revocation.token;
    },

    /** The member of a mesh named by id or pubkey; not_found otherwise. */
    resolveMember: member,

    async livePeers(meshRef: string): Promise<PresenceView[]> {
      return listLivePeers(db, (await mesh(meshRef)).id);
    },
  };
}

export type AdminService = ReturnType<typeof createAdminService>;
