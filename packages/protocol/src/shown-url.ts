// A URL as errors, logs and admin answers show it: what may be a credential
// in it replaced by `***`. The user and password (a user alone is often a
// token itself), and each query parameter's value with its name kept
// (`?token=***`); a parameter without a value (`?s3cret`) may be the token,
// and is shown as `***` whole. The path is shown as it is.
export function shownUrl(url: string): string {
  if (!URL.canParse(url)) return url;
  const parsed = new URL(url);
  if (parsed.username === "" && parsed.password === "" && parsed.search === "") return url;
  if (parsed.username !== "") parsed.username = "***";
  if (parsed.password !== "") parsed.password = "***";
  if (parsed.search !== "") {
    parsed.search = [...parsed.searchParams].map(([name, value]) => (value === "" ? "***" : `${encodeURIComponent(name)}=***`)).join("&");
  }
  return parsed.href;
}
