// Links to a chat: `/#chat=<session id>`, what a tapped notification opens (the push payload's `url`).
// Session ids as the daemon validates them.
const LINK = /^#chat=([A-Za-z0-9][A-Za-z0-9_-]{0,63})$/;

/** The chat a location hash links to, or null. */
export function chatOfHash(hash: string): string | null {
  return LINK.exec(hash)?.[1] ?? null;
}

/** The chat a URL of this app links to (`/#chat=<id>` on `origin`), or null. */
export function chatOfUrl(url: string, origin: string): string | null {
  try {
    const u = new URL(url, origin);
    return u.origin === origin && u.pathname === "/" ? chatOfHash(u.hash) : null;
  } catch {
    return null;
  }
}

export function chatLink(id: string): string {
  return `/#chat=${id}`;
}
