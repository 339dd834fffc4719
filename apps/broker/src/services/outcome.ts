// What a service answers when it refuses: a stable code and a message for
// people. The transport turns codes into frames, HTTP statuses and close
// codes (transport/errors.ts); services never touch the wire.
export interface Refusal<C extends string> {
  ok: false;
  code: C;
  message: string;
}

export const refuse = <C extends string>(code: C, message: string): Refusal<C> => ({ ok: false, code, message });

/** For services whose refusals surface from deep inside a call (a transaction, an admin operation). */
export class RefusedError<C extends string> extends Error {
  constructor(readonly refusal: Refusal<C>) {
    super(refusal.message);
  }
}
