/**
 * Which model URLs the page fetches. The page's Content-Security-Policy allows connections to its
 * own origin and to https:// hosts (connect-src 'self' https:), so a URL is checked against the same
 * rule before anything is fetched, and a refusal says why instead of a bare "Failed to fetch".
 * A model from another origin that arrives in a shared link is only loaded after the user agrees.
 */

export interface ModelUrl {
  /** Absolute URL. */
  url: string;
  /** On the page's own server: a link may load it without asking. */
  sameOrigin: boolean;
}

export class ModelUrlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelUrlError';
  }
}

/** Resolves `text` against the page and checks it; throws ModelUrlError naming the problem. */
export function checkModelUrl(text: string, pageOrigin: string): ModelUrl {
  let u: URL;
  try {
    u = new URL(text.trim(), pageOrigin);
  } catch {
    throw new ModelUrlError(`"${text.slice(0, 80)}" is not a URL`);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new ModelUrlError(`${u.protocol} URLs are not allowed; use https://`);
  if (u.username || u.password) throw new ModelUrlError('URLs with credentials are not allowed (model files are fetched without cookies or passwords)');
  const sameOrigin = u.origin === new URL(pageOrigin).origin;
  if (u.protocol === 'http:' && !sameOrigin) {
    throw new ModelUrlError(`Plain http:// is only allowed for this page's own server (${new URL(pageOrigin).origin}); use https:// for ${u.host}`);
  }
  return { url: u.href, sameOrigin };
}
