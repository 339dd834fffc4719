/**
 * Whether the URL names Postgres. The driver reads any scheme as if it were
 * postgres:// (mysql://host/db would be tried as a Postgres server there).
 */
export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\/.+/.test(url);
}

/** Why such a URL is refused, without the URL (it may hold a password). */
export const UNREADABLE_DATABASE_URL = "not a URL the database driver can read (a port above 65535 or not a number, a bad %-escape?)";

/**
 * Whether the driver can read the URL: postgres.js decodes the host list,
 * parses the URL with its first host by the WHATWG parser and decodes the
 * user and password. A URL that fails there would fail at connect with an
 * error quoting it whole, password included.
 */
export function readableDatabaseUrl(url: string): boolean {
  const authority = url.slice(url.indexOf("://") + 3).split(/[?/]/)[0] ?? "";
  try {
    const hosts = decodeURIComponent(authority.slice(authority.indexOf("@") + 1));
    const parsed = new URL(url.replace(hosts, hosts.split(",")[0] ?? ""));
    decodeURIComponent(parsed.username);
    decodeURIComponent(parsed.password);
    return true;
  } catch {
    return false;
  }
}

/**
 * The URL without the query parameters named: postgres.js sends every
 * parameter it does not know as a server setting, over the one the pool
 * asks for. Only the query is rewritten, so a host list stays as written.
 */
export function withoutSettings(url: string, names: readonly string[]): { url: string; removed: string[] } {
  const start = url.indexOf("?");
  if (start < 0) return { url, removed: [] };
  const end = url.includes("#", start) ? url.indexOf("#", start) : url.length;
  const query = new URLSearchParams(url.slice(start + 1, end));
  const removed = names.filter((name) => query.has(name));
  if (removed.length === 0) return { url, removed };
  for (const name of removed) query.delete(name);
  const rest = query.toString();
  return { url: url.slice(0, start) + (rest === "" ? "" : `?${rest}`) + url.slice(end), removed };
}
