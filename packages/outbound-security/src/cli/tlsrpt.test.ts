import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { FileTlsReportStore } from '../tlsrpt/file-store';
import { noPolicyFound } from '../tlsrpt/record';
import { main, parseArgs } from './cli';

test('RPT-5: tlsrpt show DOMAIN [DAY] and send [--wait=S] [DAY] [DOMAIN…] parse; bad days and domains are usage errors', () => {
  assert.deepEqual(parseArgs(['tlsrpt', 'show', 'Example.COM', '2025-03-14']), {
    ok: true,
    configDir: './config',
    command: { kind: 'tlsrpt-show', domain: 'Example.COM', day: '2025-03-14' },
  });
  assert.deepEqual(parseArgs(['tlsrpt', 'send', '--wait=3', '2025-03-14', 'b.example', 'A.example']), {
    ok: true,
    configDir: './config',
    command: { kind: 'tlsrpt-send', day: '2025-03-14', domains: ['b.example', 'a.example'], waitSeconds: 3 },
  });
  assert.deepEqual(parseArgs(['tlsrpt', 'send']), {
    ok: true,
    configDir: './config',
    command: { kind: 'tlsrpt-send', day: null, domains: [], waitSeconds: 15 },
  });
  assert.match(String((parseArgs(['tlsrpt', 'send', '2025-02-30']) as { error: string }).error), /bad DAY/);
  assert.match(String((parseArgs(['tlsrpt', 'show', 'example.com', 'today']) as { error: string }).error), /bad DAY/);
  assert.match(String((parseArgs(['tlsrpt', 'show']) as { error: string }).error), /needs DOMAIN/);
  assert.match(String((parseArgs(['tlsrpt', 'send', '--wait=soon']) as { error: string }).error), /bad --wait/);
  // RPT-7: no SMTP submission any more (a client could pose as the CLI there).
  assert.match(String((parseArgs(['tlsrpt', 'send', '--smtp=127.0.0.1:25']) as { error: string }).error), /--smtp is gone.*outbox/);
  assert.match(String((parseArgs(['tlsrpt', 'send', '[192.0.2.1]']) as { error: string }).error), /bad DOMAIN/);
});

function output(): { out: string[]; err: string[]; io: { out(l: string): void; err(l: string): void } } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (l) => out.push(l), err: (l) => err.push(l) } };
}

test('RPT-5: tlsrpt show prints the counts as they would be reported; send refuses while reporting is off', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-tlsrpt-'));
  try {
    fs.mkdirSync(path.join(dir, 'config'));
    fs.writeFileSync(path.join(dir, 'config', 'outbound_tls.ini'), `[main]\ndata_dir=${path.join(dir, 'data')}\n`);
    const store = new FileTlsReportStore(path.join(dir, 'data', 'tlsrpt'));
    const policy = noPolicyFound('example.com');
    await store.add([
      { day: '2025-03-14', policyDomain: 'example.com', policy, count: 3 },
      {
        day: '2025-03-14',
        policyDomain: 'example.com',
        policy,
        failure: { resultType: 'starttls-not-supported', receivingIp: '192.0.2.1', failureReasonCode: 'starttls-not-offered' },
        count: 2,
      },
    ]);
    await store.close();
    const shown = output();
    assert.equal(
      await main(['--config', path.join(dir, 'config'), 'tlsrpt', 'show', 'example.com', '2025-03-14'], shown.io),
      0,
      shown.err.join('\n'),
    );
    // OPS-4: reporting is off here: said first, and no report id of a report that will not be sent.
    assert.match(shown.out[0] ?? '', /^TLS reporting is off \(\[tlsrpt\] enabled=false in outbound_tls\.ini\): nothing is counted or sent/);
    assert.equal(shown.out[1], 'example.com 2025-03-14:');
    assert.equal(shown.out[2], '  policy no-policy-found example.com: 3 successful, 2 failed');
    assert.match(
      shown.out[3] ?? '',
      /^ {4}2 × starttls-not-supported \(.*receiving-ip=192\.0\.2\.1.*failure-reason-code=starttls-not-offered/,
    );
    const sent = output();
    assert.equal(await main(['--config', path.join(dir, 'config'), 'tlsrpt', 'send', '2025-03-14'], sent.io), 1);
    assert.match(sent.err.join('\n'), /TLS reporting is off/);

    // Misconfigured (enabled without a sender): said, and status 1.
    // (another config directory: haraka-config keeps what it read of a file for the life of the process)
    fs.mkdirSync(path.join(dir, 'broken'));
    fs.writeFileSync(path.join(dir, 'broken', 'outbound_tls.ini'), `[main]\ndata_dir=${path.join(dir, 'data')}\n[tlsrpt]\nenabled=true\n`);
    const broken = output();
    assert.equal(await main(['--config', path.join(dir, 'broken'), 'tlsrpt', 'show', 'example.com', '2025-03-14'], broken.io), 1);
    assert.match(broken.out[0] ?? '', /^TLS reporting is misconfigured, so off: .*sender/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
