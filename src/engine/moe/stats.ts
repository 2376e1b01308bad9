/**
 * Load-balance figures over routing counts (per expert, for one layer), as the panels and the
 * training monitor use them. Seed 000's cold-start threshold: an expert under 5 % of tokens.
 */

export interface BalanceStats {
  /** Routed slots counted (tokens × k). */
  total: number;
  /** Coefficient of variation of the counts: std / mean (0 = perfectly even). */
  cv: number;
  /** Busiest expert's load over the mean load (1 = even). */
  maxOverMean: number;
  /** Entropy of the load distribution in nats, and normalised by log(E) (1 = even). */
  entropy: number;
  normalizedEntropy: number;
  /** Experts that got no token. */
  dead: number[];
  /** Experts that got less than `coldFraction` of the tokens (a token counts once per expert). */
  cold: number[];
}

export const COLD_FRACTION = 0.05;

/**
 * `counts[e]` = slots routed to expert e; `tokens` = tokens seen (each routes to k experts), used for
 * the cold threshold: expert e is cold when counts[e] / tokens < coldFraction.
 */
export function balanceStats(counts: ArrayLike<number>, tokens: number, coldFraction = COLD_FRACTION): BalanceStats {
  const E = counts.length;
  let total = 0;
  for (let e = 0; e < E; e++) total += counts[e]!;
  const mean = E ? total / E : 0;
  let varSum = 0, max = 0, entropy = 0;
  const dead: number[] = [], cold: number[] = [];
  for (let e = 0; e < E; e++) {
    const c = counts[e]!;
    varSum += (c - mean) ** 2;
    max = Math.max(max, c);
    if (c > 0 && total > 0) entropy -= (c / total) * Math.log(c / total);
    if (c === 0) dead.push(e);
    if (tokens > 0 && c / tokens < coldFraction) cold.push(e);
  }
  const std = E ? Math.sqrt(varSum / E) : 0;
  return {
    total,
    cv: mean > 0 ? std / mean : 0,
    maxOverMean: mean > 0 ? max / mean : 0,
    entropy,
    normalizedEntropy: E > 1 ? entropy / Math.log(E) : 1,
    dead,
    cold,
  };
}

/** Per-expert counts from chosen expert ids (one routing layer). */
export function countExperts(experts: ArrayLike<number>, numExperts: number): Uint32Array {
  const c = new Uint32Array(numExperts);
  for (let i = 0; i < experts.length; i++) c[experts[i]!]!++;
  return c;
}
