import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { after, before, test } from 'node:test';
import { TestCa } from '../fixtures/test-ca';
import { SecLevel } from '#lib/sec-level';
import { classifyConnection, isModernTls } from '#lib/tls/classify';
import { matchDnsSan } from '#lib/tls/san-match';
import { capturingIdentity, openIdentitySlot, type IdentitySlot } from '#lib/haraka/identity-capture';

let ca: TestCa;
before(async () => {
  ca = await TestCa.create();
});
after(async () => {
  await ca.cleanup();
});

async function cert(opts: Parameters<TestCa['issue']>[0]): Promise<X509Certificate> {
  return new X509Certificate((await ca.issue(opts)).cert);
}

test('TLS-1: no TLS is PLAIN', () => {
  assert.equal(classifyConnection({ encrypted: false }, 'mx.example.test').level, SecLevel.PLAIN);
});

test('TLS-1: a trusted certificate whose dNSName matches the MX host is TLS_SECURE', async () => {
  const peer = await cert({ dnsNames: ['mx.example.test'] });
  const result = classifyConnection(
    { encrypted: true, peerCertificate: peer, authorizationError: null, protocol: 'TLSv1.3' },
    'mx.example.test',
  );
  assert.equal(result.level, SecLevel.TLS_SECURE);
  assert.equal(result.protocol, 'TLSv1.3');
});

test('TLS-1: Node reporting only a host name mismatch does not decide; our dNSName check does', async () => {
  const peer = await cert({ dnsNames: ['mx.example.test'] });
  const result = classifyConnection(
    { encrypted: true, peerCertificate: peer, authorizationError: 'ERR_TLS_CERT_ALTNAME_INVALID' },
    'mx.example.test',
  );
  assert.equal(result.level, SecLevel.TLS_SECURE);
});

test('TLS-1: wildcards match exactly one label', async () => {
  const peer = await cert({ dnsNames: ['*.example.test'] });
  const obs = { encrypted: true, peerCertificate: peer, authorizationError: null };
  assert.equal(classifyConnection(obs, 'mx.example.test').level, SecLevel.TLS_SECURE);
  assert.equal(classifyConnection(obs, 'a.mx.example.test').level, SecLevel.TLS_INSECURE);
  assert.equal(classifyConnection(obs, 'example.test').level, SecLevel.TLS_INSECURE);
});

test('TLS-1: chain errors, wrong names, CN-only and expiry are TLS_INSECURE', async () => {
  const good = await cert({ dnsNames: ['mx.example.test'] });
  const insecure = (obs: Parameters<typeof classifyConnection>[0], host = 'mx.example.test') => classifyConnection(obs, host);
  assert.match(insecure({ encrypted: true, peerCertificate: good, authorizationError: 'SELF_SIGNED_CERT_IN_CHAIN' }).reason, /not trusted/);
  assert.equal(
    insecure({ encrypted: true, peerCertificate: good, authorizationError: null }, 'other.example.test').level,
    SecLevel.TLS_INSECURE,
  );
  const cnOnly = await cert({ cn: 'mx.example.test' });
  const cnResult = insecure({ encrypted: true, peerCertificate: cnOnly, authorizationError: null });
  assert.equal(cnResult.level, SecLevel.TLS_INSECURE);
  assert.match(cnResult.reason, /subjectAltName: none/);
  const expired = await cert({ dnsNames: ['mx.example.test'], expired: true });
  assert.match(insecure({ encrypted: true, peerCertificate: expired, authorizationError: null }).reason, /validity period/);
  assert.match(insecure({ encrypted: true, authorizationError: null }).reason, /no peer certificate/);
});

test('MX-2: without a host name (address literal) a connection is at most TLS_INSECURE', async () => {
  const peer = await cert({ dnsNames: ['mx.example.test'], ipAddresses: ['127.0.0.1'] });
  assert.equal(
    classifyConnection({ encrypted: true, peerCertificate: peer, authorizationError: null }, undefined).level,
    SecLevel.TLS_INSECURE,
  );
});

test('STS-7: TLS 1.2 and 1.3 are modern, older is not', () => {
  assert.equal(isModernTls('TLSv1.2'), true);
  assert.equal(isModernTls('TLSv1.3'), true);
  assert.equal(isModernTls('TLSv1.1'), false);
  assert.equal(isModernTls(undefined), false);
});

/** A real handshake with the test CA trusted; returns what the guard observes (datesVerified set, as it sets it). */
async function handshake(issued: { key: string; cert: string }): Promise<Parameters<typeof classifyConnection>[0]> {
  const server = tls.createServer({ key: issued.key, cert: issued.cert });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    return await new Promise((resolve, reject) => {
      const socket = tls.connect(
        { host: '127.0.0.1', port, servername: 'mx.example.test', ca: ca.caCert, rejectUnauthorized: false },
        () => {
          resolve({
            encrypted: true,
            authorizationError: socket.authorizationError ?? null,
            peerCertificate: socket.getPeerX509Certificate(),
            protocol: socket.getProtocol(),
            datesVerified: true,
          });
          socket.end();
        },
      );
      socket.on('error', reject);
    });
  } finally {
    server.close();
  }
}

test('TLS-1/OPS-6: over a real handshake the TLS stack checks the dates: expired and not-yet-valid certificates are TLS_INSECURE without a second check', async () => {
  const valid = await handshake(await ca.issue({ dnsNames: ['mx.example.test'] }));
  assert.equal(classifyConnection(valid, 'mx.example.test').level, SecLevel.TLS_SECURE);
  for (const dates of [{ expired: true }, { notYetValid: true }]) {
    const observed = await handshake(await ca.issue({ dnsNames: ['mx.example.test'], ...dates }));
    const result = classifyConnection(observed, 'mx.example.test');
    assert.equal(result.level, SecLevel.TLS_INSECURE, JSON.stringify(dates));
    assert.match(result.reason, /not trusted: CERT_(HAS_EXPIRED|NOT_YET_VALID)/);
  }
});

/** The dNSName checks of TLS-1, by OpenSSL: what classifyConnection asks of an X509Certificate. */
function opensslMatches(peer: X509Certificate, host: string): boolean {
  return peer.checkHost(host, { subject: 'never', wildcards: true, partialWildcards: false, multiLabelWildcards: false }) !== undefined;
}

test('OPS-6/TLS-1: matchDnsSan says "match" only where OpenSSL matches too, and does for plain names and one-label wildcards', async () => {
  const sanSets = [
    ['mx.example.test'],
    ['*.example.test'],
    ['MX.Example.TEST'],
    ['*.test'],
    ['a.example.test', 'b.example.test', '*.c.example.test'],
    ['f*.example.test'],
    ['*.*.example.test'],
    ['xn--bcher-kva.example.test', '*.xn--p1ai.test'],
    ['mx.example.test.'],
    ['example.test'],
  ];
  const hosts = [
    'mx.example.test',
    'MX.EXAMPLE.TEST',
    'a.mx.example.test',
    'example.test',
    'x.test',
    'a.example.test',
    'c.example.test',
    'z.c.example.test',
    'foo.example.test',
    'xn--bcher-kva.example.test',
    'a.xn--p1ai.test',
    'mx.example.test.',
    'mx..example.test',
    '127.0.0.1',
    '',
  ];
  let matches = 0;
  for (const dnsNames of sanSets) {
    const peer = await cert({ dnsNames, ipAddresses: ['127.0.0.1'] });
    for (const host of hosts) {
      const fast = matchDnsSan(peer.subjectAltName, host);
      if (fast === 'match') {
        matches++;
        assert.equal(opensslMatches(peer, host), true, `${dnsNames.join(',')} / ${host}: fast match that OpenSSL refuses`);
      }
    }
  }
  // The plain cases take the fast path.
  const plain: Array<[string[], string]> = [
    [['mx.example.test'], 'mx.example.test'],
    [['mx.example.test'], 'MX.EXAMPLE.TEST'],
    [['MX.Example.TEST'], 'mx.example.test'],
    [['*.example.test'], 'mx.example.test'],
    [['a.example.test', 'b.example.test', '*.c.example.test'], 'z.c.example.test'],
  ];
  for (const [dnsNames, host] of plain) {
    assert.equal(matchDnsSan((await cert({ dnsNames })).subjectAltName, host), 'match', `${dnsNames.join(',')} / ${host}`);
  }
  assert.ok(matches >= plain.length);
});

test('OPS-6: matchDnsSan never matches inside an entry Node escaped, nor an address, nor without subjectAltName', () => {
  // One dNSName "x, DNS:mx.example.test, y" is shown quoted by Node: splitting it must not find the host.
  assert.equal(matchDnsSan('DNS:"x, DNS:mx.example.test, y"', 'mx.example.test'), 'unknown');
  assert.equal(matchDnsSan('DNS:other.test, DNS:"x, DNS:mx.example.test, y"', 'mx.example.test'), 'unknown');
  assert.equal(matchDnsSan('IP Address:127.0.0.1, DNS:127.0.0.1', '127.0.0.1'), 'unknown');
  assert.equal(matchDnsSan(undefined, 'mx.example.test'), 'unknown');
  assert.equal(matchDnsSan('', 'mx.example.test'), 'unknown');
  assert.equal(matchDnsSan('email:mx.example.test, URI:mx.example.test', 'mx.example.test'), 'unknown');
});

test('OPS-6/TLS-1: a name matched by the handshake counts for that host only; without it and without a certificate, TLS_INSECURE', () => {
  const matched = { encrypted: true, authorizationError: null, datesVerified: true, nameMatchedFor: 'mx.example.test' };
  assert.equal(classifyConnection(matched, 'mx.example.test').level, SecLevel.TLS_SECURE);
  assert.match(classifyConnection(matched, 'other.example.test').reason, /no peer certificate/);
  assert.match(classifyConnection(matched, undefined).reason, /address literal/);
  assert.match(
    classifyConnection({ ...matched, authorizationError: 'UNABLE_TO_GET_ISSUER_CERT' }, 'mx.example.test').reason,
    /not trusted/,
  );
  const noMatchCheck = classifyConnection(matched, 'mx.example.test', new Date(), ['mx.example.test']);
  assert.deepEqual(noMatchCheck.match, { ok: false, reason: 'no peer certificate' }, 'match= names need the certificate');
});

/**
 * A real handshake whose TLS options went through capturingIdentity (as
 * outbound_tls's get_tls_options wrapper does), observed both ways: from the
 * captured identity check alone and from the certificate.
 */
async function capturedHandshake(
  issued: { key: string; cert: string },
  servername: string,
): Promise<{ slot: IdentitySlot; fast: Parameters<typeof classifyConnection>[0]; full: Parameters<typeof classifyConnection>[0] }> {
  const server = tls.createServer({ key: issued.key, cert: issued.cert });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const mx = { exchange: '127.0.0.1', from_dns: servername };
  const slot = openIdentitySlot(mx);
  try {
    return await new Promise((resolve, reject) => {
      const options = capturingIdentity(mx, { host: '127.0.0.1', port, servername, ca: ca.caCert, rejectUnauthorized: false });
      const socket = tls.connect(options, () => {
        const base = {
          encrypted: true,
          authorizationError: socket.authorizationError ?? null,
          protocol: socket.getProtocol(),
          datesVerified: true,
        };
        const captured = slot.captured;
        const nameMatched = captured?.host === servername && matchDnsSan(captured.subjectAltName, servername) === 'match';
        // Read once: Node 20 returns the peer certificate to the first call only.
        const peerCertificate = socket.getPeerX509Certificate();
        resolve({
          slot,
          fast: nameMatched ? { ...base, nameMatchedFor: servername } : { ...base, peerCertificate },
          full: { ...base, peerCertificate },
        });
        socket.end();
      });
      socket.on('error', reject);
    });
  } finally {
    server.close();
  }
}

test('OPS-6/TLS-1: over real handshakes the captured identity check classifies every certificate as reading it does', async () => {
  const cases: Array<{ issued: { key: string; cert: string }; host: string; captured: boolean }> = [
    { issued: await ca.issue({ dnsNames: ['mx.example.test'] }), host: 'mx.example.test', captured: true },
    { issued: await ca.issue({ dnsNames: ['*.example.test'] }), host: 'mx.example.test', captured: true },
    { issued: await ca.issue({ dnsNames: ['other.example.test'] }), host: 'mx.example.test', captured: true },
    { issued: await ca.issue({ cn: 'mx.example.test' }), host: 'mx.example.test', captured: true },
    // A chain error: Node makes no identity check, nothing is captured, the certificate is read.
    { issued: await ca.selfSigned({ dnsNames: ['mx.example.test'] }), host: 'mx.example.test', captured: false },
    { issued: await ca.issue({ dnsNames: ['mx.example.test'], expired: true }), host: 'mx.example.test', captured: false },
  ];
  for (const { issued, host, captured } of cases) {
    const { slot, fast, full } = await capturedHandshake(issued, host);
    assert.equal(slot.captured !== undefined, captured, `${host}: identity captured`);
    if (slot.captured) assert.equal(slot.captured.host, host);
    const expected = classifyConnection(full, host);
    assert.deepEqual(classifyConnection(fast, host), expected, `${host} ${JSON.stringify(expected)}`);
  }
  const plain = await capturedHandshake(await ca.issue({ dnsNames: ['mx.example.test'] }), 'mx.example.test');
  assert.equal(plain.fast.nameMatchedFor, 'mx.example.test', 'the plain case took the fast path');
  assert.equal(plain.fast.peerCertificate, undefined);
});

test('OPS-6: capturingIdentity leaves the verdict to the check it wraps and changes nothing without a slot', () => {
  const mx = {};
  const options = { servername: 'mx.example.test' };
  assert.equal(capturingIdentity(mx, options), options, 'no slot: the same options');
  const slot = openIdentitySlot(mx);
  const refusal = new Error('refused by the wrapped check');
  const wrapped = capturingIdentity(mx, { ...options, checkServerIdentity: () => refusal });
  const cert = { subjectaltname: 'DNS:mx.example.test' } as unknown as tls.PeerCertificate;
  assert.equal(wrapped.checkServerIdentity?.('mx.example.test', cert), refusal);
  assert.deepEqual(slot.captured, { host: 'mx.example.test', subjectAltName: 'DNS:mx.example.test' });
  const byNode = capturingIdentity(mx, options);
  assert.ok(byNode.checkServerIdentity?.('other.test', cert) instanceof Error, "Node's own check answers by default");
  assert.equal(byNode.checkServerIdentity?.('mx.example.test', cert), undefined);
});
