import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { byId, jsonl, originAndWorkspace, runCli } from '../helpers/cli.js';
import { queryLedger, writeLedger } from '../helpers/ledger.js';
import { samplePdf } from '../helpers/origin.js';

/** SPEC §8: what a later run (cron) does with the failures of earlier ones. */
describe('failures across runs', () => {
  const env = originAndWorkspace();

  async function setup(name: string) {
    const { origin, ws } = env;
    origin.set(`/${name}/good.pdf`, { body: samplePdf(`${name} good`, 3000) });
    origin.set(`/${name}/login.pdf`, { body: Buffer.from('<html>sign in</html>'.padEnd(2000)), headers: { 'content-type': 'application/pdf' } });
    origin.set(`/${name}/busy.pdf`, { body: Buffer.from('busy'), status: 503 });
    const manifest = await ws.file(`${name}.jsonl`, jsonl([
      { id: 'good', url: origin.url(`/${name}/good.pdf`) },
      { id: 'gone', url: origin.url(`/${name}/missing.pdf`) },
      { id: 'login', url: origin.url(`/${name}/login.pdf`) },
      { id: 'busy', url: origin.url(`/${name}/busy.pdf`) },
      { id: 'https://openalex.org/W900', best_oa_location: null, primary_location: { pdf_url: null }, locations: [] },
      { id: 'ftp', url: 'ftp://example.org/x.pdf' },
      '{"id": "broken", "url": ',
    ]));
    const out = join(ws.dir, name);
    const args = ['download', manifest, '-o', out, '--retries', '1', '--retry-delay', '1', '--json', '--no-progress'];
    const asked = (id: string) => env.origin.requests.filter((q) => q.path === `/${name}/${id === 'gone' ? 'missing' : id}.pdf`).length;
    return { out, args, asked };
  }

  it('asks permanent failures again only with --retry-failed, transient ones once due; exit 1 only for new failures', async () => {
    const { out, args, asked } = await setup('runs');
    const first = await runCli(args);
    expect(first.code).toBe(1);
    const r1 = byId(first.records);
    expect(r1.get('good')!.status).toBe('downloaded');
    for (const id of ['gone', 'login', 'busy', 'W900', 'ftp']) {
      expect(r1.get(id), id).toMatchObject({ status: 'failed', attempted: true });
      expect(typeof r1.get(id)!.message, id).toBe('string');
    }
    expect(r1.get('W900')!.message).toBe('the line names no URL to fetch');
    expect(String(r1.get('ftp')!.message)).toContain('ftp://example.org/x.pdf');
    const counts = { gone: asked('gone'), login: asked('login'), busy: asked('busy') };
    expect(counts.busy).toBe(2);

    // The same cron line a minute later: nothing asked again, known failures reported, exit 0.
    const second = await runCli(args);
    expect(second.code, second.stderr).toBe(0);
    const r2 = byId(second.records);
    expect(r2.get('good')!.status).toBe('skipped');
    for (const id of ['gone', 'login', 'busy', 'W900', 'ftp']) {
      expect(r2.get(id), id).toMatchObject({ status: 'failed', attempted: false, reason: r1.get(id)!.reason });
      expect(String(r2.get(id)!.message), id).toMatch(/earlier run/);
    }
    expect(String(r2.get('gone')!.message)).toContain('--retry-failed');
    expect(String(r2.get('busy')!.message)).toMatch(/next attempt after \d{4}-/);
    expect({ gone: asked('gone'), login: asked('login'), busy: asked('busy') }).toEqual(counts);
    // The invalid line is stored: seen again, it is reported but is no new failure.
    expect(second.records.filter((r) => r.status === 'invalid')).toHaveLength(1);

    // Transient failures wait for their next-attempt time, which doubles run after run.
    const [busy] = queryLedger<{ next_attempt_at: number; failed_runs: number; updated_at: number }>(out, "SELECT next_attempt_at, failed_runs, updated_at FROM jobs WHERE item_id = 'busy'");
    expect(busy!.failed_runs).toBe(1);
    expect(Math.abs(busy!.next_attempt_at - busy!.updated_at - 10 * 60 * 1000)).toBeLessThan(1000);
    writeLedger(out, "UPDATE jobs SET next_attempt_at = 0 WHERE item_id = 'busy'");
    const third = await runCli(args);
    expect(third.code).toBe(1);
    expect(byId(third.records).get('busy')).toMatchObject({ status: 'failed', attempted: true, reason: 'http_503' });
    expect(asked('busy')).toBe(counts.busy + 2);
    const [again] = queryLedger<{ next_attempt_at: number; failed_runs: number; updated_at: number }>(out, "SELECT next_attempt_at, failed_runs, updated_at FROM jobs WHERE item_id = 'busy'");
    expect(again!.failed_runs).toBe(2);
    expect(Math.abs(again!.next_attempt_at - again!.updated_at - 20 * 60 * 1000)).toBeLessThan(1000);
    expect(asked('gone')).toBe(counts.gone);

    // --retry-failed asks every failure again.
    const fourth = await runCli([...args, '--retry-failed']);
    expect(fourth.code).toBe(1);
    expect(byId(fourth.records).get('gone')).toMatchObject({ status: 'failed', attempted: true, reason: 'http_404' });
    expect(asked('gone')).toBe(counts.gone + 1);
    expect(asked('login')).toBe(counts.login + 1);
  });

  it('keeps invalid lines in the ledger: status and export show them after the run', async () => {
    const { out, args } = await setup('invalid');
    await runCli(args);
    const status = await runCli(['status', '-o', out]);
    expect(status.stdout).toMatch(/invalid lines: +1/);
    expect(status.stdout).toMatch(/not asked again: 4 failed permanently/);
    const exported = (await runCli(['export', '-o', out])).stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const invalid = exported.filter((r) => r.status === 'invalid');
    expect(invalid).toHaveLength(1);
    expect(invalid[0]).toMatchObject({ reason: 'invalid_line', state: 'invalid' });
    expect(String(invalid[0]!.source)).toMatch(/invalid\.jsonl:7$/);
    expect(typeof invalid[0]!.message).toBe('string');
    const csv = (await runCli(['export', '-o', out, '--format', 'csv'])).stdout.trim().split('\n');
    expect(csv).toHaveLength(exported.length + 1);
  });

  it('ends a human run with the failed items listed, and says what was known already', async () => {
    const { args } = await setup('human');
    const human = args.filter((a) => a !== '--json');
    const first = await runCli(human);
    expect(first.stderr).toContain('docstokg: failed:');
    for (const id of ['gone', 'login', 'busy', 'W900', 'ftp']) expect(first.stderr).toMatch(new RegExp(`^  ${id}  `, 'm'));
    expect(first.stderr).toMatch(/ {2}gone {2}http_404 {2}http:\/\/127\.0\.0\.1:\d+\/human\/missing\.pdf/);
    const second = await runCli(human);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).not.toContain('docstokg: failed:');
    expect(second.stderr).toContain('5 failed in an earlier run and were not asked again (--retry-failed asks again)');
  });
});
