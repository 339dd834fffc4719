// JWT hellos (docs/browser.md): a web app's backend vouches for a browser's
// pubkey with a token signed by JWT_SECRET (HS256) or the private half of
// JWT_PUBLIC_KEY (RS256 or EdDSA). Only the configured algorithms verify.
import { isEd25519PublicKey, issueText, MAX_JWT_LENGTH, PUBKEY, TAG, storable } from "@switchboard/protocol";
import { errors, importSPKI, jwtVerify, type JWTVerifyGetKey } from "jose";
import { z } from "zod";
import type { JwtKeyAlgorithm } from "../config.ts";
import { refuse, type Refusal } from "./outcome.ts";

/** A token whose exp passed less than this long ago is still accepted (clock skew between issuer and broker). */
export const JWT_LEEWAY_SECONDS = 30;
export const JWT_AUDIENCE = "switchboard";

const claimsSchema = z.object({
  mesh: storable(z.string().min(1).max(128)),
  // As the admin API does: a token may enrol its pubkey, and no message could be sealed for bytes that name no key.
  pubkey: z
    .string()
    .regex(PUBKEY, { abort: true })
    .refine(isEd25519PublicKey, { error: "not an ed25519 public key (it names no point of the curve, or one of small order: no key pair has it)" }),
  exp: z.number(),
  name: storable(z.string().min(1).max(128)).optional(),
  tags: z.array(z.string().regex(TAG)).max(64).optional(),
  aud: z.union([z.string(), z.array(z.string())]).optional(),
});

export interface JwtClaims {
  mesh: string;
  pubkey: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
  name: string | undefined;
  tags: string[];
}

export type JwtOutcome = { ok: true; claims: JwtClaims } | Refusal<"expired" | "unauthorized">;

export interface JwtKeys {
  secret?: string | undefined;
  publicKey?: { pem: string; alg: JwtKeyAlgorithm } | undefined;
}

const unauthorized = (message: string) => refuse<"unauthorized">("unauthorized", message);

export class JwtVerifier {
  private constructor(
    private readonly getKey: JWTVerifyGetKey | null,
    private readonly algorithms: string[],
  ) {}

  static async create(keys: JwtKeys): Promise<JwtVerifier> {
    const byAlg = new Map<string, CryptoKey | Uint8Array>();
    if (keys.secret !== undefined) byAlg.set("HS256", new TextEncoder().encode(keys.secret));
    if (keys.publicKey !== undefined) byAlg.set(keys.publicKey.alg, await importSPKI(keys.publicKey.pem, keys.publicKey.alg));
    if (byAlg.size === 0) return new JwtVerifier(null, []);
    const getKey: JWTVerifyGetKey = (header) => {
      const key = byAlg.get(header.alg ?? "");
      if (key === undefined) throw new errors.JOSEAlgNotAllowed(`alg ${header.alg} is not configured`);
      return key;
    };
    return new JwtVerifier(getKey, [...byAlg.keys()]);
  }

  get enabled(): boolean {
    return this.getKey !== null;
  }

  async verify(token: string): Promise<JwtOutcome> {
    if (this.getKey === null) return unauthorized("JWT hellos are not enabled on this broker");
    // Bounded before any decoding or signature work.
    if (token.length === 0 || token.length > MAX_JWT_LENGTH) return unauthorized(`the token must be 1 to ${MAX_JWT_LENGTH} characters`);
    let payload: unknown;
    try {
      ({ payload } = await jwtVerify(token, this.getKey, {
        algorithms: this.algorithms,
        clockTolerance: JWT_LEEWAY_SECONDS,
        requiredClaims: ["exp"],
      }));
    } catch (error) {
      // jose checks the signature before the claims: only a genuine token is reported as expired.
      if (error instanceof errors.JWTExpired) return refuse("expired", "the token expired");
      return unauthorized("the token does not verify");
    }
    const claims = claimsSchema.safeParse(payload);
    if (!claims.success) return unauthorized(`the token's claims are not usable: ${issueText(claims.error, payload, "claims")}`);
    const { aud } = claims.data;
    if (aud !== undefined && !(Array.isArray(aud) ? aud : [aud]).includes(JWT_AUDIENCE)) {
      return unauthorized(`the token's audience does not include ${JWT_AUDIENCE}`);
    }
    return {
      ok: true,
      claims: {
        mesh: claims.data.mesh,
        pubkey: claims.data.pubkey,
        expiresAt: claims.data.exp * 1000,
        name: claims.data.name,
        tags: claims.data.tags ?? [],
      },
    };
  }
}
