// What an Authorization header carries as a bearer token, as it was written:
// printable ASCII, no spaces. The broker's own tokens (ADMIN_TOKEN,
// METRICS_TOKEN, the generated admin token's file) are held to it at start.
export const BEARER_TOKEN = /^[\x21-\x7e]+$/;

export const BEARER_TOKEN_RULE = "holds a character outside printable ASCII, which an Authorization header does not carry as written";
