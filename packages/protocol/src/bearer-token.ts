// What an Authorization header carries as a bearer token, as it was written:
// printable ASCII, no spaces. The broker holds its own tokens (ADMIN_TOKEN,
// METRICS_TOKEN, the generated admin token's file) to it at start, and the
// CLI the tokens it is given before it sends one.
export const BEARER_TOKEN = /^[\x21-\x7e]+$/;

export const BEARER_TOKEN_RULE = "holds a character outside printable ASCII, which an Authorization header does not carry as written";
