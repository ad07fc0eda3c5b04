import { DecryptCommand, type KMSClient } from '@aws-sdk/client-kms';
import { pairKeyContext } from '#events/tokens.ts';
import { TokenError } from '#tokens/jws.ts';
import { verifyPairToken, type PairTokenClaims } from '#tokens/pair-tokens.ts';
import { pairRevocationRefusal, type PairRevocations } from '#tokens/pair-revocations.ts';
import { UsedTokens } from './used-tokens.ts';

/**
 * The network-pair secrets of the VMs on this host, unwrapped with KMS under each VM's encryption
 * context (a ciphertext handed over for another VM does not decrypt), with the network pairs to each
 * that are revoked. Checks connection tokens locally: no control-plane call per connection.
 */
export class PairKeys {
  private readonly secrets = new Map<string, { ciphertext: string; secret: Buffer }>();
  private revocations = new Map<string, PairRevocations>();
  /** Per VM: the networks besides its own whose VMs may open pairs to it, as last listed. */
  private allowedSources = new Map<string, ReadonlySet<string>>();
  /** When the listing in use was asked for: what it says is true as of then. */
  private allowedSourcesListedAt = 0;

  /** In memory until the agent gives it its file (`UsedTokens.open`). */
  constructor(
    private readonly kms: KMSClient,
    private used: UsedTokens = UsedTokens.inMemory(),
  ) {}

  /** From now on, token ids are recorded there (the agent's start, before it serves anything). */
  recordUsedTokensIn(used: UsedTokens): void {
    this.used = used;
  }

  /**
   * Takes the ciphertexts the control plane listed for this host; unwraps only new or changed
   * ones. Takes the revoked pairs listed with them at once.
   */
  async replace(
    pairKeys: readonly { vmId: string; ciphertext: string; pairRevocations?: PairRevocations | undefined; allowedSourceNetworks?: string[] | undefined }[],
    askedAt = Date.now(),
  ): Promise<void> {
    const listed = new Set(pairKeys.map(({ vmId }) => vmId));
    this.revocations = new Map(pairKeys.flatMap(({ vmId, pairRevocations }) => (pairRevocations ? [[vmId, pairRevocations] as const] : [])));
    this.allowedSourcesListedAt = askedAt;
    this.allowedSources = new Map(
      pairKeys.flatMap(({ vmId, allowedSourceNetworks }) => (allowedSourceNetworks ? [[vmId, new Set(allowedSourceNetworks)] as const] : [])),
    );
    await Promise.all(
      pairKeys.map(async ({ vmId, ciphertext }) => {
        if (this.secrets.get(vmId)?.ciphertext === ciphertext) return;
        const { Plaintext } = await this.kms.send(
          new DecryptCommand({ CiphertextBlob: Buffer.from(ciphertext, 'base64'), EncryptionContext: pairKeyContext(vmId) }),
        );
        this.secrets.set(vmId, { ciphertext, secret: Buffer.from(Plaintext!) });
      }),
    );
    this.keepOnly(listed);
  }

  keepOnly(vmIds: ReadonlySet<string>): void {
    for (const [vmId, entry] of this.secrets) {
      if (vmIds.has(vmId)) continue;
      entry.secret.fill(0);
      this.secrets.delete(vmId);
    }
    for (const vmId of this.revocations.keys()) if (!vmIds.has(vmId)) this.revocations.delete(vmId);
  }

  /**
   * Checks a token for a connection to `destinationVmId` on this host (throws TokenError when
   * refused): genuine, for this VM at this host, unexpired, of a pair not revoked, and never used
   * before, here or by this host's agent before a restart.
   */
  async verify(token: string, destinationVmId: string, hostAddress: string): Promise<PairTokenClaims> {
    const entry = this.secrets.get(destinationVmId);
    if (!entry) throw new Error(`vm ${destinationVmId} does not run on this host`);
    const claims = verifyPairToken(token, entry.secret, { dst: destinationVmId, dstHost: hostAddress });
    const revoked = pairRevocationRefusal(this.revocations.get(destinationVmId), claims);
    if (revoked) throw new TokenError(revoked);
    // A captured token must not admit a second flow.
    const admission = await this.used.admit(claims);
    if (!admission.admitted) throw new TokenError(admission.reason);
    return claims;
  }

  /** Why a pair admitted before may no longer flow (revoked since), if it may not. */
  refusal(claims: PairTokenClaims): string | undefined {
    return pairRevocationRefusal(this.revocations.get(claims.dst), claims);
  }

  /** Why a pair from another network (to a VM of `networkId`) may open no new connection (no longer an allowed source), if it may not. */
  closedToNewConnections(claims: PairTokenClaims, networkId: string): string | undefined {
    const allowed = this.allowedSources.get(claims.dst);
    if (!claims.srcNet || claims.srcNet === networkId || !allowed || allowed.has(claims.srcNet)) return undefined;
    // A token minted after the listing was asked for (iat is in whole seconds) knows better: the source may have been allowed since; the next listing decides.
    if (claims.iat * 1000 >= this.allowedSourcesListedAt - 1_000) return undefined;
    return `network ${claims.srcNet} is no longer an allowed source of network ${networkId}`;
  }

  close(): Promise<void> {
    return this.used.close();
  }
}
