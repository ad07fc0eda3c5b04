import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PairRecords } from '../../host-agent/pair-records.ts';

const end = { localIp: '10.0.0.3', table: 1234, remoteIp: '10.1.0.2', remoteHost: '192.0.2.11' };
const claims = (expSeconds: number) => ({
  src: 'vm-src',
  srcIp: '10.1.0.2',
  dst: 'vm-dst',
  dstIp: '10.0.0.3',
  dstHost: '192.0.2.12',
  srcHost: '192.0.2.11',
  srcNet: 'net-a',
  iat: expSeconds - 300,
  exp: expSeconds,
  jti: 'abcdefghijklmnop',
});

describe('the record of network pairs an agent leaves its successor', () => {
  const fresh = () => {
    const logged: string[] = [];
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'pair-records-')), 'network-pairs.json');
    return { file, logged, records: new PairRecords(file, (line) => logged.push(line)) };
  };

  it('gives back what was saved, without the pairs whose tokens expired meanwhile', () => {
    const { records } = fresh();
    const now = Date.now();
    const live = { claims: claims(Math.floor(now / 1000) + 60), end, newConnections: true };
    const expired = { claims: claims(Math.floor(now / 1000) - 1), end, newConnections: false };
    const opened = { vm: { vmId: 'vm-src', ip: '10.1.0.2', networkId: 'net-a' }, destinationVmId: 'vm-dst', end, expiresAt: now + 60_000 };
    records.save({ admitted: [live, expired], opened: [opened, { ...opened, destinationVmId: 'vm-old', expiresAt: now - 1 }] });
    expect(records.load(now)).toEqual({ admitted: [live], opened: [opened] });
  });

  it('starts empty, saying why, from a missing, damaged or foreign file', () => {
    const { file, records, logged } = fresh();
    expect(records.load()).toEqual({ admitted: [], opened: [] });
    expect(logged).toEqual([]);
    writeFileSync(file, '{"admitted": [');
    expect(records.load()).toEqual({ admitted: [], opened: [] });
    writeFileSync(file, JSON.stringify({ admitted: [{ claims: { src: 'x' } }], opened: [] }));
    expect(records.load()).toEqual({ admitted: [], opened: [] });
    expect(logged).toEqual([expect.stringMatching(/unreadable/), expect.stringMatching(/is not a record of pairs/)]);
  });
});
