/**
 * The router knobs: what the engine has in force, the checkpoint's defaults, and a preset from the
 * URL waiting for a model to apply to. The URL preset is this state, encoded (src/preset).
 */
import { create } from 'zustand';
import type { RouterConfig } from '../engine/moe/router';
import type { Preset } from '../preset/preset';

export interface RouterState {
  router: RouterConfig | null;
  defaults: RouterConfig | null;
  /** A preset from the page's URL, applied once the model has loaded. */
  pending: Preset | null;
  error: string | null;
  presetError: string | null;
  /** A link's model on another origin, waiting for the user to agree before anything is fetched. */
  confirm: { url: string; preset: Preset } | null;
}

export const useRouterStore = create<RouterState>()(() => ({ router: null, defaults: null, pending: null, error: null, presetError: null, confirm: null }));
