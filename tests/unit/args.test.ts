import { describe, expect, it } from 'vitest';
import { parseArgs } from '../../cli/args';

describe('CLI argument parsing', () => {
  it('splits commands, valued options and flags', () => {
    expect(parseArgs(['generate', '--model', 'dir', '--greedy', '--max-new=5', '--json'])).toEqual({
      positional: ['generate'],
      flags: { model: 'dir', greedy: true, 'max-new': '5', json: true },
    });
  });
});
