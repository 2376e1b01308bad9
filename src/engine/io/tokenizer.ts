/**
 * tokenizer.json through @huggingface/tokenizers and the chat template through @huggingface/jinja
 * (from tokenizer_config.json's chat_template, or a chat_template.jinja file beside it).
 */
import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';
import type { ChatTurn, SessionTokenizer } from '../session';

export interface TokenizerFiles {
  tokenizerJson: unknown;
  tokenizerConfig: Record<string, unknown> | null;
  chatTemplate: string | null;
}

/** Special-token fields in tokenizer_config may be strings or {content: string} objects. */
function tokenText(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return null;
}

export class HfTokenizer implements SessionTokenizer {
  private readonly tok: Tokenizer;
  private readonly template: Template | null;
  readonly eosTokenIds: number[];
  readonly bosToken: string | null;
  readonly eosToken: string | null;

  constructor(files: TokenizerFiles, modelEosIds: number[]) {
    const cfg = files.tokenizerConfig ?? {};
    try {
      this.tok = new Tokenizer(files.tokenizerJson as object, cfg);
    } catch (e) {
      throw new Error(`tokenizer.json could not be loaded: ${e instanceof Error ? e.message : String(e)}`);
    }
    const source = files.chatTemplate ?? (typeof cfg.chat_template === 'string' ? cfg.chat_template : null);
    try {
      this.template = source ? new Template(source) : null;
    } catch (e) {
      throw new Error(`The chat template does not parse: ${e instanceof Error ? e.message : String(e)}`);
    }
    this.bosToken = tokenText(cfg.bos_token);
    this.eosToken = tokenText(cfg.eos_token);
    const eos = this.eosToken !== null ? this.tok.token_to_id(this.eosToken) : undefined;
    this.eosTokenIds = [...new Set([...modelEosIds, ...(eos !== undefined ? [eos] : [])])];
  }

  get hasChatTemplate(): boolean {
    return this.template !== null;
  }

  encode(text: string): number[] {
    return this.tok.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: number[]): string {
    return this.tok.decode(ids, { skip_special_tokens: false });
  }

  /** The conversation rendered by the chat template (plain "role: text" lines when there is none). */
  renderChat(messages: ChatTurn[]): string {
    if (!this.template) return `${messages.map((m) => `${m.role}: ${m.content}`).join('\n')}\nassistant:`;
    return this.template.render({ messages, add_generation_prompt: true, bos_token: this.bosToken ?? '', eos_token: this.eosToken ?? '' });
  }

  chatIds(messages: ChatTurn[]): number[] {
    return this.encode(this.renderChat(messages));
  }
}
