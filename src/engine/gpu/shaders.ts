/**
 * WGSL sources from `shaders/*.wgsl`, inlined by Vite (`?raw`) in the page build, in Vitest and in
 * the CLI bundle alike. A line `#include "name.wgsl"` pulls in a shared snippet (once per module).
 */
const files = import.meta.glob('../../../shaders/*.wgsl', { query: '?raw', import: 'default', eager: true }) as Record<
  string,
  string
>;

const byName = new Map<string, string>();
for (const [path, src] of Object.entries(files)) byName.set(path.slice(path.lastIndexOf('/') + 1), src);

const INCLUDE = /^[ \t]*#include\s+"([^"]+)"[ \t]*$/gm;

/** Names of every shader file we ship, e.g. `matmul.wgsl`. */
export function shaderNames(): string[] {
  return [...byName.keys()].sort();
}

/** The source of `name` with its includes resolved; `defines` replace `${KEY}` placeholders. */
export function shaderSource(name: string, defines: Record<string, string | number> = {}): string {
  const seen = new Set<string>();
  // Defines apply before includes too, so an include can be chosen by one (`wload_${WFMT}.wgsl`).
  const define = (code: string) => {
    for (const [k, v] of Object.entries(defines)) code = code.replaceAll(`\${${k}}`, String(v));
    return code;
  };
  const expand = (file: string, chain: string[]): string => {
    const raw = byName.get(file);
    const src = raw === undefined ? undefined : define(raw);
    if (src === undefined) {
      const from = chain.length ? ` (included from ${chain.join(' → ')})` : '';
      throw new Error(`Unknown shader "${file}"${from}; shaders/ has: ${shaderNames().join(', ')}`);
    }
    if (chain.includes(file)) throw new Error(`Shader include cycle: ${[...chain, file].join(' → ')}`);
    return src.replace(INCLUDE, (_m, inc: string) => {
      if (seen.has(inc)) return '';
      seen.add(inc);
      return expand(inc, [...chain, file]);
    });
  };
  seen.add(name);
  const code = expand(name, []);
  const left = /\$\{([A-Z_0-9]+)\}/.exec(code);
  if (left) throw new Error(`Shader "${name}" needs a value for \${${left[1]}}`);
  return code;
}
