import type http from 'node:http';
import path from 'node:path';
import readline from 'node:readline';
import type { DataPlaneLab } from '../../local/data-plane/lab.ts';
import { projectRoot } from '../../local/processes.ts';
import { startTestDns, type TestDns } from '../fixtures/dns-server.ts';
import { makeTestCertificates, type TestCertificates } from './test-ca.ts';

/** One request the outside service was sent. */
export interface OutsideRequest {
  scheme: 'http' | 'https';
  path: string;
  headers: http.IncomingHttpHeaders;
}

export interface OutsideService {
  /** Every request it was sent, in order. */
  seen: OutsideRequest[];
  /** Gives each of the service's names its address; `server` is what agents resolve with (`--dns-server`). */
  dns: TestDns;
  /** The throwaway CA agents must trust for its HTTPS (`NODE_EXTRA_CA_CERTS`). */
  certificates: TestCertificates;
}

/**
 * The world outside the cloud for egress tests: a namespace of the lab at `address` (call after
 * addHosts) serving HTTPS and HTTP under `names`, which a test DNS server resolves to it, with a
 * certificate from a throwaway CA. Stopped with the lab; close `dns` yourself.
 */
export async function startOutsideService(lab: DataPlaneLab, address: string, names: string[], redirectTo?: string): Promise<OutsideService> {
  const world = await lab.addOutsideWorld(address);
  const certificates = makeTestCertificates(names);
  const dns = await startTestDns(Object.fromEntries(names.map((name) => [name, [address]])));
  const service = lab.spawnIn(world.netns, [
    process.execPath,
    path.join(projectRoot, 'test/fixtures/outside-service.mjs'),
    '--address',
    address,
    '--cert',
    certificates.certFile,
    '--key',
    certificates.keyFile,
    ...(redirectTo ? ['--redirect-to', redirectTo] : []),
  ]);
  const seen: OutsideRequest[] = [];
  const lines = readline.createInterface({ input: service.stdout! });
  await new Promise<void>((resolve) => lines.on('line', (line) => (line === 'READY' ? resolve() : seen.push(JSON.parse(line) as OutsideRequest))));
  return { seen, dns, certificates };
}
