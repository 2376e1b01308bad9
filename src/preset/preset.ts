/**
 * The shareable preset: which model, and every router knob, as URL query parameters. Versioned;
 * decoding validates every field and names the first bad one, so a malformed or hostile link can
 * never reach the engine (which validates again against the loaded model's expert count).
 *
 *   ?v=1&model=demo&k=3&score=sigmoid&temp=0.7&noise=0.5&seed=3&renorm=1
 *   &groups=4&topkg=2&gscore=top2sum&bias=0,0.1,…&off=3,5&cap=1.25&scale=2.5
 */
import * as v from 'valibot';
import type { RouterConfig } from '../engine/moe/router';
import { checkModelUrl } from './model-url';

export const PRESET_VERSION = 1;
/** Longest model URL a link may carry (as normalised; the common limit of browsers and servers). */
export const MAX_MODEL_URL_LENGTH = 2048;
/**
 * Longer links are refused before parsing. It must hold every link encodePreset writes for a
 * preset this page decodes, or sharing a link that opened fine gives one that does not (fuzzing
 * found: at 8192, a 2.5 k-character link re-encoded past the limit). The longest: 256 biases of up
 * to 25 characters with "%2C" between them (7.2 k), 256 ablated ids (1.5 k), a model URL of
 * MAX_MODEL_URL_LENGTH whose every character URLSearchParams writes as %XX (6.1 k), the knobs (0.2 k).
 */
export const MAX_QUERY_LENGTH = 16384;
const MAX_EXPERTS = 256;

export type ModelRef = { kind: 'demo' } | { kind: 'url'; url: string };

export interface Preset {
  model: ModelRef | null;
  /** Only the knobs the link sets; the rest stay at the model's defaults. */
  router: Partial<RouterConfig>;
}

export class PresetError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`Bad link parameter "${field}": ${message}`);
    this.name = 'PresetError';
  }
}

const num = (min: number, max: number) => v.pipe(v.string(), v.transform(Number), v.number('not a number'), v.finite('not a finite number'), v.minValue(min, `below ${min}`), v.maxValue(max, `above ${max}`));
const int = (min: number, max: number) => v.pipe(num(min, max), v.integer('not a whole number'));
const bool = v.pipe(v.picklist(['0', '1', 'true', 'false'], 'must be 0 or 1'), v.transform((s) => s === '1' || s === 'true'));
/** A comma list, each item checked by `item` (which throws a message naming the bad item). */
function parseList<T>(field: string, text: string, item: (s: string) => T): T[] {
  if (text === '') return [];
  const parts = text.split(',');
  if (parts.length > MAX_EXPERTS) throw new PresetError(field, `more than ${MAX_EXPERTS} values`);
  return parts.map((s, i) => {
    try {
      return item(s);
    } catch (e) {
      throw new PresetError(field, `item ${i + 1}: ${e instanceof Error ? e.message : String(e)}`);
    }
  });
}
const finiteNumber = (s: string) => {
  const x = Number(s);
  if (s.trim() === '' || !Number.isFinite(x) || Math.abs(x) > 1000) throw new Error(`"${s.slice(0, 24)}" is not a number within ±1000`);
  return x;
};
const expertId = (s: string) => {
  const x = Number(s);
  if (!/^\d{1,3}$/.test(s) || x >= MAX_EXPERTS) throw new Error(`"${s.slice(0, 24)}" is not an expert id (0 … ${MAX_EXPERTS - 1})`);
  return x;
};

const QuerySchema = v.object({
  v: v.pipe(v.string(), v.check((s) => s === String(PRESET_VERSION), `unsupported version (this page reads v=${PRESET_VERSION})`)),
  model: v.optional(v.string()),
  k: v.optional(int(1, MAX_EXPERTS)),
  score: v.optional(v.picklist(['softmax', 'sigmoid'], 'must be softmax or sigmoid')),
  temp: v.optional(num(0.01, 100)),
  noise: v.optional(num(0, 100)),
  seed: v.optional(int(0, 0xffffffff)),
  renorm: v.optional(bool),
  groups: v.optional(int(1, 64)),
  topkg: v.optional(int(1, 64)),
  gscore: v.optional(v.picklist(['max', 'top2sum'], 'must be max or top2sum')),
  bias: v.optional(v.string()),
  off: v.optional(v.string()),
  cap: v.optional(num(0, 64)),
  scale: v.optional(num(0.001, 100)),
});

function parseModel(s: string, origin?: string): ModelRef {
  if (s === 'demo') return { kind: 'demo' };
  const ref = parseModelUrl(s, origin);
  if (ref.url.length > MAX_MODEL_URL_LENGTH) throw new PresetError('model', `URL longer than ${MAX_MODEL_URL_LENGTH} characters`);
  return ref;
}

function parseModelUrl(s: string, origin?: string): { kind: 'url'; url: string } {
  if (origin !== undefined) {
    // The page knows its origin: the same rule as a typed URL (https, or plain http on this server).
    try {
      return { kind: 'url', url: checkModelUrl(s, origin).url };
    } catch (e) {
      throw new PresetError('model', e instanceof Error ? e.message : String(e));
    }
  }
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw new PresetError('model', 'must be "demo" or an http(s) URL');
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new PresetError('model', `${u.protocol} URLs are not allowed; use http(s)`);
  if (u.username || u.password) throw new PresetError('model', 'URLs with credentials are not allowed');
  return { kind: 'url', url: u.href };
}

/**
 * Parses `location.search` (or any query string); returns null when it holds no preset. With the
 * page's `origin`, a model URL must be https or on that origin (see model-url.ts).
 */
export function decodePreset(search: string, origin?: string): Preset | null {
  if (search.length > MAX_QUERY_LENGTH) throw new PresetError('(link)', `longer than ${MAX_QUERY_LENGTH} characters`);
  const params = new URLSearchParams(search);
  if ([...params.keys()].length === 0) return null;
  // A null-prototype record: keys such as __proto__ stay plain data.
  const raw: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [key, value] of params) {
    if (Object.hasOwn(raw, key)) throw new PresetError(key.slice(0, 40), 'appears twice');
    raw[key] = value;
  }
  if (!Object.hasOwn(raw, 'v')) throw new PresetError('v', 'missing: links carry a version, e.g. v=1');
  for (const key of Object.keys(raw)) {
    if (!Object.hasOwn(QuerySchema.entries, key)) throw new PresetError(key.slice(0, 40), 'is not a preset parameter');
  }
  const r = v.safeParse(QuerySchema, { ...raw });
  if (!r.success) {
    const issue = r.issues[0];
    throw new PresetError(issue.path?.map((p) => String(p.key)).join('.') ?? '?', issue.message);
  }
  const q = r.output;
  const router: Partial<RouterConfig> = {};
  if (q.k !== undefined) router.topK = q.k;
  if (q.score !== undefined) router.scoring = q.score;
  if (q.temp !== undefined) router.temperature = q.temp;
  if (q.noise !== undefined) router.noiseStd = q.noise;
  if (q.seed !== undefined) router.seed = q.seed;
  if (q.renorm !== undefined) router.renormalize = q.renorm;
  if (q.groups !== undefined) router.nGroup = q.groups;
  if (q.topkg !== undefined) router.topkGroup = q.topkg;
  if (q.gscore !== undefined) router.groupScore = q.gscore;
  if (q.bias !== undefined) router.bias = parseList('bias', q.bias, finiteNumber);
  if (q.off !== undefined) router.disabled = [...new Set(parseList('off', q.off, expertId))].sort((a, b) => a - b);
  if (q.cap !== undefined) router.capacityFactor = q.cap;
  if (q.scale !== undefined) router.routedScale = q.scale;
  return { model: q.model !== undefined ? parseModel(q.model, origin) : null, router };
}

/** The query string for `router` (only knobs that differ from `defaults`) and the model. */
export function encodePreset(model: ModelRef | null, router: RouterConfig, defaults: RouterConfig): string {
  const p = new URLSearchParams({ v: String(PRESET_VERSION) });
  if (model) p.set('model', model.kind === 'demo' ? 'demo' : model.url);
  const put = (key: string, a: unknown, b: unknown, text: string) => {
    if (JSON.stringify(a) !== JSON.stringify(b)) p.set(key, text);
  };
  put('k', router.topK, defaults.topK, String(router.topK));
  put('score', router.scoring, defaults.scoring, router.scoring);
  put('temp', router.temperature, defaults.temperature, String(router.temperature));
  put('noise', router.noiseStd, defaults.noiseStd, String(router.noiseStd));
  put('seed', router.seed, defaults.seed, String(router.seed));
  put('renorm', router.renormalize, defaults.renormalize, router.renormalize ? '1' : '0');
  put('groups', router.nGroup, defaults.nGroup, String(router.nGroup));
  put('topkg', router.topkGroup, defaults.topkGroup, String(router.topkGroup));
  put('gscore', router.groupScore, defaults.groupScore, router.groupScore);
  put('bias', router.bias, defaults.bias, (router.bias ?? []).join(','));
  put('off', router.disabled, defaults.disabled, router.disabled.join(','));
  put('cap', router.capacityFactor, defaults.capacityFactor, String(router.capacityFactor));
  put('scale', router.routedScale, defaults.routedScale, String(router.routedScale));
  return `?${p.toString()}`;
}
