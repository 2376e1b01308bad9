/**
 * What survives a reload, kept in IndexedDB: the conversation, and the router preset of the model
 * it was tuned on. Every record is versioned and validated when read; one that does not parse (a
 * newer version, a half-written or edited store) is set aside under `corrupt/<key>/<time>`, not
 * deleted, and the app starts that part fresh with a message saying where the old data went.
 * Training runs, when they exist, get a record kind of their own here (key `training/<id>`).
 */
import { createStore, del, get, set, type UseStore } from 'idb-keyval';
import * as v from 'valibot';
import { MAX_QUERY_LENGTH } from '../preset/preset';

/** The storage the records live in (IndexedDB in the page, a Map in tests). */
export interface KeyValue {
  get(key: string): Promise<unknown>;
  set(key: string, value: unknown): Promise<void>;
  del(key: string): Promise<void>;
}

export const DB_NAME = 'moe-playground';
export const STORE_NAME = 'state';

export function indexedDbStore(): KeyValue {
  let store: UseStore | null = null;
  // Opened on first use: a browser without IndexedDB fails there, inside the callers' try.
  const s = () => (store ??= createStore(DB_NAME, STORE_NAME));
  return { get: (k) => get(k, s()), set: (k, value) => set(k, value, s()), del: (k) => del(k, s()) };
}

export function memoryStore(init: Record<string, unknown> = {}): KeyValue & { data: Map<string, unknown> } {
  const data = new Map(Object.entries(init));
  return { data, get: async (k) => data.get(k), set: async (k, value) => void data.set(k, value), del: async (k) => void data.delete(k) };
}

/** Long conversations are fine; a store that claims millions of messages is not a conversation. */
const MAX_MESSAGES = 10_000;
const MAX_MESSAGE_CHARS = 1_000_000;

const Message = v.strictObject({
  role: v.picklist(['system', 'user', 'assistant'], 'must be system, user or assistant'),
  content: v.pipe(v.string('must be text'), v.maxLength(MAX_MESSAGE_CHARS, `longer than ${MAX_MESSAGE_CHARS} characters`)),
});

const ChatRecord = v.object({
  version: v.literal(1, 'unknown version'),
  savedAt: v.number(),
  messages: v.pipe(v.array(Message, 'must be a list'), v.maxLength(MAX_MESSAGES, `more than ${MAX_MESSAGES} messages`)),
});

const RouterRecord = v.object({
  version: v.literal(1, 'unknown version'),
  savedAt: v.number(),
  /** The loaded model's name (ModelSummary.name): the knobs apply to that model only. */
  model: v.pipe(v.string(), v.maxLength(4096)),
  /** The knobs as a preset query (src/preset), validated again by decodePreset when applied. */
  query: v.pipe(v.string(), v.maxLength(MAX_QUERY_LENGTH)),
});

export type ChatRecord = v.InferOutput<typeof ChatRecord>;
export type RouterRecord = v.InferOutput<typeof RouterRecord>;

export const RECORDS = {
  chat: { schema: ChatRecord, what: 'conversation' },
  router: { schema: RouterRecord, what: 'router settings' },
} as const;
export type RecordKey = keyof typeof RECORDS;
type RecordOf<K extends RecordKey> = v.InferOutput<(typeof RECORDS)[K]['schema']>;

export interface ReadResult<T> {
  value: T | null;
  /** A sentence for the user when the record could not be used; null when all is well. */
  problem: string | null;
}

/** Moves a record that cannot be used out of the way, keeping its data; returns where it went. */
export async function setAside(kv: KeyValue, key: string, raw: unknown): Promise<string> {
  const aside = `corrupt/${key}/${new Date().toISOString()}`;
  await kv.set(aside, raw);
  await kv.del(key);
  return aside;
}

export async function readRecord<K extends RecordKey>(kv: KeyValue, key: K): Promise<ReadResult<RecordOf<K>>> {
  const { schema, what } = RECORDS[key];
  let raw: unknown;
  try {
    raw = await kv.get(key);
  } catch (e) {
    return { value: null, problem: `The saved ${what} could not be read from the browser's storage (${e instanceof Error ? e.message : String(e)}); nothing will be saved in this tab.` };
  }
  if (raw === undefined) return { value: null, problem: null };
  const r = v.safeParse(schema, raw);
  if (r.success) return { value: r.output as RecordOf<K>, problem: null };
  const issue = r.issues[0];
  const path = issue.path?.map((p) => String(p.key)).join('.') || '(record)';
  return { value: null, problem: await unusable(kv, key, raw, `${path}: ${issue.message}`) };
}

/** Sets a record aside and says so; `why` names the field that failed. */
export async function unusable(kv: KeyValue, key: RecordKey, raw: unknown, reason: string): Promise<string> {
  const what = RECORDS[key].what;
  // Validation messages quote the stored value: keep a huge one from filling the page.
  const why = reason.length > 300 ? `${reason.slice(0, 300)}…` : reason;
  try {
    const aside = await setAside(kv, key, raw);
    return `The saved ${what} could not be used (${why}). It was set aside in the browser's storage as "${aside}" and a fresh one started.`;
  } catch (e) {
    return `The saved ${what} could not be used (${why}) and could not be set aside (${e instanceof Error ? e.message : String(e)}); a fresh one started.`;
  }
}

export async function writeRecord<K extends RecordKey>(kv: KeyValue, key: K, value: RecordOf<K>): Promise<void> {
  await kv.set(key, value);
}
