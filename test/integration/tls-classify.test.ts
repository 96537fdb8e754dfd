import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { after, before, test } from 'node:test';
import { TestCa } from '../fixtures/test-ca';
import { SecLevel } from 'haraka-outbound-security/tls/sec-level';
import { classifyConnection, isModernTls } from 'haraka-outbound-security/tls/classify';

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
