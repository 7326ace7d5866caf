import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { alreadyCanonical, canonicalizeByParsing, canonicalizeUrl } from '../../src/manifest/canonical-url.js';
import { parseLine } from '../../src/manifest/parse.js';

const RUNS = { numRuns: 2000 };

/** URLs built from hostile pieces: odd cases, IDN, escapes (valid, lone, lowercase), dot segments, credentials. */
const segment = fc.oneof(
  fc.constantFrom('.', '..', '%2e', '%2E%2e', '%', '%%41', '%%341', '%zz', '%7e', '%7E', '%41', '%2f', '%2F', '%c3%a9', 'é', '~', ' ', 'a b', '?', '#', '\\', ';', '@', ':', 'ñ', '💥', ''),
  fc.string({ maxLength: 6 }),
);
const host = fc.oneof(
  fc.constantFrom('example.org', 'EXAMPLE.org', 'bücher.example', 'xn--bcher-kva.example', '127.0.0.1', '[::1]', '0x7f.1', 'a.b.c', 'e.org.', '%65.org'),
  fc.domain(),
);
const url = fc
  .record({
    scheme: fc.constantFrom('http', 'https', 'HTTP', 'HtTpS'),
    creds: fc.constantFrom('', 'user@', 'user:pa%20ss@', ':secret@'),
    host,
    port: fc.constantFrom('', ':80', ':443', ':8080', ':0080'),
    path: fc.array(segment, { maxLength: 6 }),
    query: fc.constantFrom('', '?', '?a=1&B=%7e', '?x=%zz#y'),
    frag: fc.constantFrom('', '#', '#f', '#%41'),
  })
  .map((p) => `${p.scheme}://${p.creds}${p.host}${p.port}/${p.path.join('/')}${p.query}${p.frag}`);

/** URLs close to the shortcut's edges: IP-like hosts, ports, dot segments, punycode, odd characters. */
const nearPlain = fc
  .record({
    scheme: fc.constantFrom('http', 'https', 'HTTP', 'ftp'),
    host: fc.oneof(
      fc.constantFrom('127.0.0.1', '127.1', '1.2.3.04', '256.1.1.1', '0x7f.0.0.1', 'a.0x', 'a.0xg', 'a.1', '1.a', 'xn--bcher-kva.example', 'xn--a.org', 'a.xn--', 'a--b.org', '-a.org', 'a.-b', 'a..b', 'e.org.', 'localhost', '[::1]', 'Ex.org'),
      fc.domain(),
      fc.stringMatching(/^[a-z0-9.-]{1,12}$/),
    ),
    port: fc.constantFrom('', ':80', ':443', ':8080', ':0', ':080', ':65535', ':65536', ':99999', ':'),
    path: fc.array(fc.oneof(fc.constantFrom('.', '..', '...', '.a', '', '~', '%41', '^', '`', '{', "'", '|', '\\', ' ', 'é'), fc.stringMatching(/^[A-Za-z0-9\-._~!$&()*+,;=:@]{0,5}$/)), { maxLength: 5 }),
    query: fc.oneof(fc.constantFrom('', '?', '?a=%zz', "?a='", '?a b', '?x#y', '??'), fc.stringMatching(/^\?[A-Za-z0-9\-._~!$&()*+,;=:@/?%]{0,6}$/)),
    slash: fc.constantFrom('/', ''),
  })
  .map((p) => `${p.scheme}://${p.host}${p.port}${p.slash}${p.path.join('/')}${p.query}`);

describe('canonicalizeUrl (properties)', () => {
  it('recognizes an already canonical URL only when parsing would return it unchanged', () => {
    let taken = 0;
    fc.assert(
      fc.property(fc.oneof(nearPlain, url, fc.webUrl({ withQueryParameters: true })), (raw) => {
        const quick = alreadyCanonical(raw);
        if (quick === null) return;
        taken += 1;
        expect(quick).toEqual(canonicalizeByParsing(raw));
      }),
      { numRuns: 20_000 },
    );
    // The shortcut is taken often enough for the comparison to mean something.
    expect(taken).toBeGreaterThan(2_000);
  });

  it('is idempotent: canonicalizing a canonical URL changes nothing', () => {
    fc.assert(
      fc.property(fc.oneof(url, fc.webUrl({ withFragments: true, withQueryParameters: true }), fc.string()), (raw) => {
        const once = canonicalizeUrl(raw);
        if (!once.ok) return;
        const twice = canonicalizeUrl(once.url);
        expect(twice).toMatchObject({ ok: true, url: once.url });
        // What is fetched canonicalizes to the same key as what was written.
        expect(canonicalizeUrl(once.href)).toMatchObject({ ok: true, url: once.url });
      }),
      RUNS,
    );
  });

  it('maps equivalent spellings to one key', () => {
    const spellings = fc.record({
      host: fc.constantFrom('example.org', 'bücher.example'),
      path: fc.array(fc.constantFrom('a', 'b~c', 'é', 'x-y.pdf'), { minLength: 1, maxLength: 4 }),
    });
    fc.assert(
      fc.property(spellings, fc.constantFrom('HTTPS', 'https'), fc.constantFrom('', ':443'), fc.constantFrom('', '#frag'), fc.boolean(), (p, scheme, port, frag, dots) => {
        const plain = `https://${p.host}/${p.path.join('/')}`;
        // Upper-case host, default port, a fragment, dot segments, escaped unreserved characters,
        // lower-case escapes of the rest: all one resource.
        const escaped = p.path.map((s) => [...Buffer.from(s)].map((b) => `%${b.toString(16)}`).join('')).join('/');
        const variant = `${scheme}://${p.host.toUpperCase()}${port}/${dots ? 'z/../' : ''}${escaped}${frag}`;
        const a = canonicalizeUrl(plain);
        const b = canonicalizeUrl(variant);
        expect(a.ok && b.ok && a.url === b.url).toBe(true);
      }),
      RUNS,
    );
  });

  it('never keeps credentials in the key or the fetched URL, and carries them as Basic auth', () => {
    fc.assert(
      fc.property(url, (raw) => {
        const c = canonicalizeUrl(raw);
        if (!c.ok) return;
        for (const u of [new URL(c.url), new URL(c.href)]) expect(u.username + u.password).toBe('');
        const given = new URL(raw);
        expect(c.auth !== null).toBe(given.username !== '' || given.password !== '');
      }),
      RUNS,
    );
  });
});

describe('parseLine (properties)', () => {
  const line = (text: string) => ({ file: 'm.jsonl', line: 1, text });

  it('never throws, whatever the line, and an invalid line always says why', () => {
    const json = fc.jsonValue().map((v) => JSON.stringify(v));
    const object = fc.dictionary(fc.constantFrom('url', 'urls', 'id', 'doi', 'sha256', 'best_oa_location', 'locations', 'open_access', 'x'), fc.jsonValue()).map((o) => JSON.stringify(o));
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), json, object, url), (text) => {
        const p = parseLine(line(text));
        if (p.kind === 'invalid') expect(p.message.length).toBeGreaterThan(0);
        if (p.kind === 'item') {
          expect(p.item.key).toMatch(/^[0-9a-f]{64}$/);
          expect(p.item.id.length).toBeGreaterThan(0);
          for (const c of p.item.candidates) expect(c.href).toMatch(/^https?:\/\//);
        }
      }),
      RUNS,
    );
  });

  it('gives the same item key to a URL however the line spells it', () => {
    // (A bare line is one URL with no blanks inside; a URL with a space must be written as JSON.)
    fc.assert(
      fc.property(url.filter((u) => !/\s/.test(u)), (raw) => {
        const bare = parseLine(line(raw));
        const obj = parseLine(line(JSON.stringify({ url: raw })));
        const padded = parseLine(line(`  ${raw}\t`));
        expect(obj.kind).toBe(bare.kind);
        if (bare.kind === 'item' && obj.kind === 'item' && padded.kind === 'item') {
          expect(obj.item.key).toBe(bare.item.key);
          expect(padded.item.key).toBe(bare.item.key);
        }
      }),
      RUNS,
    );
  });

  it('never echoes credentials in an invalid-line message', () => {
    fc.assert(
      fc.property(fc.constantFrom('http://user:hunter2@', 'ftp://me:hunter2@'), fc.string(), (prefix, rest) => {
        for (const text of [`${prefix}${rest} x`, JSON.stringify({ url: `${prefix}[${rest}` }), `{"url": "${prefix}${rest}`]) {
          const p = parseLine(line(text));
          if (p.kind === 'invalid') expect(p.message).not.toContain('hunter2');
        }
      }),
      RUNS,
    );
  });
});
