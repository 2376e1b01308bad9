import { describe, expect, it } from 'vitest';
import { checkModelUrl } from '../../../src/preset/model-url';
import { decodePreset } from '../../../src/preset/preset';

const PAGE = 'http://localhost:4173';

describe('model URLs the page may fetch (the same rule as its connect-src)', () => {
  it('takes https anywhere and http only on the page\'s own server', () => {
    expect(checkModelUrl('https://huggingface.co/org/m/resolve/main/', PAGE)).toEqual({ url: 'https://huggingface.co/org/m/resolve/main/', sameOrigin: false });
    expect(checkModelUrl('http://localhost:4173/models/demo/', PAGE)).toEqual({ url: 'http://localhost:4173/models/demo/', sameOrigin: true });
    expect(checkModelUrl('/models/demo/', PAGE).sameOrigin).toBe(true);
  });

  const refused: Array<[string, RegExp]> = [
    ['http://127.0.0.1:4173/m/', /Plain http:\/\/ is only allowed for this page's own server \(http:\/\/localhost:4173\); use https:\/\/ for 127\.0\.0\.1:4173/],
    ['http://evil.example/m/', /use https:\/\/ for evil\.example/],
    ['javascript:alert(1)', /^javascript: URLs are not allowed/],
    ['data:text/html,<script>alert(1)</script>', /^data: URLs are not allowed/],
    ['file:///etc/passwd', /^file: URLs are not allowed/],
    ['blob:http://localhost:4173/x', /^blob: URLs are not allowed/],
    ['https://user:pw@example.org/m/', /credentials are not allowed/],
    ['http://[::1', /is not a URL/],
  ];
  for (const [url, why] of refused) it(`refuses ${url}`, () => expect(() => checkModelUrl(url, PAGE)).toThrow(why));

  it('applies to a shared link when the page gives its origin', () => {
    expect(decodePreset('?v=1&model=https://example.org/m/', PAGE)?.model).toEqual({ kind: 'url', url: 'https://example.org/m/' });
    expect(() => decodePreset('?v=1&model=http://evil.example/m/', PAGE)).toThrow(/Bad link parameter "model": Plain http:\/\//);
    expect(() => decodePreset('?v=1&model=javascript:alert(1)', PAGE)).toThrow(/"model": javascript: URLs are not allowed/);
  });
});
