import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { RouterConfig } from '../../../src/engine/moe/router';
import { decodePreset, encodePreset, MAX_QUERY_LENGTH, PresetError } from '../../../src/preset/preset';

const defaults: RouterConfig = {
  topK: 2, scoring: 'softmax', temperature: 1, noiseStd: 0, seed: 0, renormalize: false, nGroup: 1, topkGroup: 1,
  groupScore: 'max', bias: null, disabled: [], capacityFactor: 0, routedScale: 1,
};

describe('URL preset', () => {
  it('round-trips every knob exactly', () => {
    const router: RouterConfig = {
      topK: 3, scoring: 'sigmoid', temperature: 0.7, noiseStd: 0.25, seed: 123456, renormalize: true, nGroup: 4, topkGroup: 2,
      groupScore: 'top2sum', bias: [0.5, -0.125, 0, 1e-3, 0, 0, 0, 0.3333333333333333], disabled: [1, 6], capacityFactor: 1.25, routedScale: 2.5,
    };
    const q = encodePreset({ kind: 'url', url: 'https://example.org/m/' }, router, defaults);
    const back = decodePreset(q)!;
    expect(back.model).toEqual({ kind: 'url', url: 'https://example.org/m/' });
    expect({ ...defaults, ...back.router }).toEqual(router);
  });
  it('keeps links short: only knobs that differ from the defaults', () => {
    expect(encodePreset({ kind: 'demo' }, { ...defaults, topK: 3 }, defaults)).toBe('?v=1&model=demo&k=3');
    expect(decodePreset('')).toBeNull();
  });
  it('round-trips random presets (property)', () => {
    const arb = fc.record({
      topK: fc.integer({ min: 1, max: 16 }), scoring: fc.constantFrom('softmax' as const, 'sigmoid' as const),
      temperature: fc.double({ min: 0.01, max: 100, noNaN: true }), noiseStd: fc.double({ min: 0, max: 100, noNaN: true }).map((x) => x + 0),
      seed: fc.integer({ min: 0, max: 0xffffffff }), renormalize: fc.boolean(), nGroup: fc.integer({ min: 1, max: 64 }),
      topkGroup: fc.integer({ min: 1, max: 64 }), groupScore: fc.constantFrom('max' as const, 'top2sum' as const),
      bias: fc.option(fc.array(fc.double({ min: -1000, max: 1000, noNaN: true }).map((x) => x + 0), { minLength: 1, maxLength: 16 }), { nil: null }),
      disabled: fc.uniqueArray(fc.integer({ min: 0, max: 255 }), { maxLength: 8 }).map((a) => a.sort((x, y) => x - y)),
      capacityFactor: fc.double({ min: 0, max: 64, noNaN: true }).map((x) => x + 0), routedScale: fc.double({ min: 0.001, max: 100, noNaN: true }),
    });
    fc.assert(fc.property(arb, (router) => {
      const back = decodePreset(encodePreset(null, router, defaults))!;
      expect({ ...defaults, ...back.router }).toEqual(router);
    }));
  });

  const bad: Array<[string, RegExp]> = [
    ['?k=3', /"v": missing/],
    ['?v=2&k=3', /"v": unsupported version/],
    ['?v=1&k=0', /"k": below 1/],
    ['?v=1&k=2.5', /"k": not a whole number/],
    ['?v=1&temp=abc', /"temp": not a number/],
    ['?v=1&temp=Infinity', /"temp": not a finite number/],
    ['?v=1&score=relu', /"score": must be softmax or sigmoid/],
    ['?v=1&renorm=yes', /"renorm": must be 0 or 1/],
    ['?v=1&off=1,x', /"off": item 2: "x" is not an expert id/],
    ['?v=1&off=999', /"off": item 1/],
    ['?v=1&bias=1,NaN', /"bias": item 2/],
    ['?v=1&bias=1e9', /"bias": item 1/],
    ['?v=1&model=javascript:alert(1)', /"model": javascript: URLs are not allowed/],
    ['?v=1&model=https://u:p@evil.example/', /"model": URLs with credentials/],
    ['?v=1&model=not a url', /"model": must be "demo" or an http\(s\) URL/],
    ['?v=1&__proto__=1', /"__proto__": is not a preset parameter/],
    ['?v=1&k=2&k=3', /"k": appears twice/],
    [`?v=1&bias=${'0,'.repeat(10000)}0`, /"\(link\)": longer than/],
    [`?v=1&model=https://a.example/${'x'.repeat(2048)}`, /"model": URL longer than 2048 characters/],
  ];
  for (const [query, msg] of bad) {
    it(`rejects ${query.slice(0, 48)}${query.length > 48 ? '…' : ''}`, () => {
      expect(() => decodePreset(query)).toThrow(PresetError);
      expect(() => decodePreset(query)).toThrow(msg);
    });
  }
  it('never throws anything but a PresetError on arbitrary input (fuzz)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (s) => {
        try {
          decodePreset(s);
        } catch (e) {
          expect(e).toBeInstanceOf(PresetError);
        }
      }),
      { numRuns: 2000 },
    );
    expect(MAX_QUERY_LENGTH).toBeGreaterThan(256 * 8);
  });
});
