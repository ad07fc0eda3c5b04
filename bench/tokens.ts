import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { DescribeKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { deploymentFromEnvironment, keyAlias } from '#events/naming.ts';
import type { HostCredentialClaims } from '#events/tokens.ts';
import { decodeJws } from '#tokens/jws.ts';
import { KeyPairJwsSigner } from '#tokens/key-pair-signer.ts';
import { KmsPublicKeys } from '#tokens/kms-public-keys.ts';
import { mintVmToken, VmTokenVerifier } from '#tokens/vm-tokens.ts';
import { startLocalStack } from '../local/local-stack.ts';
import { agentStatus } from '../host-agent/agent-control-client.ts';
import { projectRoot } from '../local/processes.ts';
import { apiClient } from './api-client.ts';

/**
 * Service-account token throughput: tokens a real host agent mints through a VM's metadata
 * server, and tokens the verifier library checks (whole chain, credential cached), beside this
 * machine's raw node-crypto ES256 sign and verify rates, which bound both.
 */
const { values } = parseArgs({
  args: process.argv.slice(3),
  options: { seconds: { type: 'string', default: '5' }, concurrency: { type: 'string', default: '16' } },
});
const seconds = Number(values.seconds);
const concurrency = Number(values.concurrency);
if (!(seconds > 0) || !(concurrency >= 1)) throw new Error('--seconds must be > 0 and --concurrency >= 1');

/** Runs `work` back to back for the bench duration; returns operations per second. */
function ratePerSecond(work: () => void): number {
  let count = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  while (performance.now() < deadline) {
    for (let i = 0; i < 100; i++) work();
    count += 100;
  }
  return count / ((performance.now() - started) / 1000);
}

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const sample = Buffer.from('x'.repeat(900));
const rawSign = ratePerSecond(() => sign('sha256', sample, { key: privateKey, dsaEncoding: 'ieee-p1363' }));
const signature = sign('sha256', sample, { key: privateKey, dsaEncoding: 'ieee-p1363' });
const rawVerify = ratePerSecond(() => verify('sha256', sample, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature));

console.error('starting the local control plane with one host agent...');
const stateDir = path.join(projectRoot, '.local-run', `bench-${process.pid}`);
// The bench measures what a host can mint, not one VM's allowance (20/s): its agent lets a VM mint without a practical limit.
const stack = await startLocalStack({
  agentCount: 1,
  hostPrefix: 'tokens',
  stateDir,
  log: () => {},
  agentEnv: { HOST_AGENT_METADATA_TOKENS_PER_SECOND: '100000' },
});
try {
  const [agent] = stack.agents;
  const api = await apiClient(stack, 'tenant', 'bench');
  // Tenants do not pick hosts: the bench pins VMs as the operator, for its tenant.
  const operator = await apiClient(stack, 'operator', 'bench');
  const { networkId } = await api.createNetwork({ body: { name: 'tokens', cidr: '10.210.0.0/24' } });
  const vm = await operator.createVm({ body: { name: 'minter', networkId, hostId: agent!.hostId, tenantId: 'bench' } });
  const { serviceAccountId } = await api.createServiceAccount({ body: { name: 'bench' } });
  await api.attachServiceAccount({ params: { vmId: vm.vmId }, body: { serviceAccountId } });

  const identityUrl = async () => {
    for (let waited = 0; waited < 30_000; waited += 100) {
      const status = await agentStatus(agent!.controlSocket);
      const metadataUrl = status.vms[vm.vmId]?.metadataUrl;
      if (metadataUrl && status.serviceAccounts[vm.vmId]) return `${metadataUrl}/computeMetadata/v1/instance/service-accounts/default/identity?audience=bench`;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error('the agent did not get a credential for the VM within 30 s');
  };
  const url = await identityUrl();

  // Minting over the metadata server, as VMs do, with `concurrency` callers.
  const tokens: string[] = [];
  const mintStarted = performance.now();
  const mintDeadline = mintStarted + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < mintDeadline) {
        const response = await fetch(url, { headers: { 'metadata-flavor': 'Stratoplane' } });
        if (response.status !== 200) throw new Error(`mint failed: ${response.status} ${await response.text()}`);
        tokens.push(await response.text());
      }
    }),
  );
  const minted = tokens.length / ((performance.now() - mintStarted) / 1000);

  // The same minting in this process, without HTTP: what the agent's own work costs.
  const credential = String(decodeJws(tokens[0]!).payload.cred);
  const claims = decodeJws(credential).payload as HostCredentialClaims;
  const signer = KeyPairJwsSigner.generate();
  const mintedInProcess = ratePerSecond(() => mintVmToken(signer, { credential, claims, vmId: vm.vmId, audience: 'bench' }));

  // Verifying the whole chain offline; the first call fetches the KMS public key and checks the credential.
  const kms = new KMSClient({ endpoint: stack.aws.endpoint, region: stack.runner.region, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
  const { KeyMetadata } = await kms.send(new DescribeKeyCommand({ KeyId: keyAlias('host-credentials', deploymentFromEnvironment()) }));
  const verifier = new VmTokenVerifier(new KmsPublicKeys(kms, [KeyMetadata!.Arn!]));
  await verifier.verify(tokens[0]!, 'bench');
  const verifyStarted = performance.now();
  let verified = 0;
  while (performance.now() - verifyStarted < seconds * 1000) {
    await verifier.verify(tokens[verified % tokens.length]!, 'bench');
    verified++;
  }
  const verifyRate = verified / ((performance.now() - verifyStarted) / 1000);

  const format = (rate: number) => `${Math.round(rate).toLocaleString('en-US').padStart(9)} /s`;
  console.log(
    `bench:tokens  ${seconds} s per figure, ${concurrency} concurrent metadata callers, token size ${tokens[0]!.length} bytes (credential ${String(decodeJws(tokens[0]!).payload.cred).length})`,
  );
  console.log(`  raw node-crypto ES256 sign (ceiling for minting)        ${format(rawSign)}`);
  console.log(
    `  minted in-process (mintVmToken, no HTTP)                ${format(mintedInProcess)}   ${((mintedInProcess / rawSign) * 100).toFixed(0)}% of the ceiling`,
  );
  console.log(`  minted by the host agent via the VM's metadata server   ${format(minted)}   ${((minted / rawSign) * 100).toFixed(0)}% of the ceiling`);
  console.log(`  raw node-crypto ES256 verify                             ${format(rawVerify)}`);
  console.log(
    `  verified by VmTokenVerifier (chain, credential cached)  ${format(verifyRate)}   ${((verifyRate / rawVerify) * 100).toFixed(0)}% of raw verify`,
  );
  console.log("  (the agent, this client and the emulator share the machine's cores; minting makes no control-plane call per token)");
} finally {
  await stack.stop();
  rmSync(stateDir, { recursive: true, force: true });
}
