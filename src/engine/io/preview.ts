/**
 * A short JSON-like rendering of a value from a user's file, for error messages. JSON.stringify
 * cannot be used on such values: it recurses once per nesting level (a 100 000-deep array in a
 * config.json overflows the stack, fuzzing found) and renders a huge value whole before it could be
 * cut. This walks at most `max` characters' worth and a few levels, so its cost is bounded.
 */
const MAX_DEPTH = 4;

export function previewValue(value: unknown, max = 60): string {
  const out: string[] = [];
  let len = 0;
  // Stops the walk once the text is long enough to be cut anyway.
  const full = () => len > max;
  const put = (s: string) => {
    out.push(s);
    len += s.length;
  };
  const walk = (v: unknown, depth: number): void => {
    if (full()) return;
    if (v === undefined) return put('undefined');
    if (typeof v === 'string') return put(JSON.stringify(v.length > max ? v.slice(0, max + 1) : v));
    if (typeof v === 'number') return put(Number.isFinite(v) ? JSON.stringify(v) : String(v));
    if (typeof v !== 'object' || v === null) return put(String(v));
    if (depth >= MAX_DEPTH) return put(Array.isArray(v) ? '[…]' : '{…}');
    if (Array.isArray(v)) {
      put('[');
      for (let i = 0; i < v.length && !full(); i++) {
        if (i) put(',');
        walk(v[i], depth + 1);
      }
      return put(']');
    }
    put('{');
    let first = true;
    // for…in stops early, unlike Object.keys on an object with a million keys.
    for (const k in v) {
      if (full()) break;
      if (!Object.hasOwn(v, k)) continue;
      if (!first) put(',');
      first = false;
      put(`${JSON.stringify(k.length > max ? k.slice(0, max + 1) : k)}:`);
      walk((v as Record<string, unknown>)[k], depth + 1);
    }
    put('}');
  };
  walk(value, 0);
  const s = out.join('');
  return s.length > max ? `${s.slice(0, max - 3)}...` : s;
}
