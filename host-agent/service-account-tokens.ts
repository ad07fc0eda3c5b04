import type { HostCredentialClaims } from '#events/tokens.ts';
import { decodeJws } from '#tokens/jws.ts';
import { KeyPairJwsSigner } from '#tokens/key-pair-signer.ts';
import { mintVmToken } from '#tokens/vm-tokens.ts';
import type { P256PublicJwk } from '#events/api.ts';

export interface IssuedCredential {
  serviceAccountId: string;
  vmIds: string[];
  credential: string;
}

/** Below this much remaining life a credential is not used: the refresh is overdue. */
const MIN_REMAINING_SECONDS = 60;

/**
 * The host's service-account credentials and the in-memory key they bind. The private key is
 * made at start and never leaves the process; tokens are minted here with no control-plane call.
 * Minting for a VM needs a credential naming it that is current, and the VM running here.
 */
export class ServiceAccountTokens {
  private readonly signer = KeyPairJwsSigner.generate();
  private byVm = new Map<string, { credential: string; claims: HostCredentialClaims }>();
  minted = 0;

  publicJwk(): P256PublicJwk {
    const { kty, crv, x, y } = this.signer.publicKey.export({ format: 'jwk' });
    return { kty: kty as 'EC', crv: crv as 'P-256', x: x!, y: y! };
  }

  /** Replaces every credential with what the control plane answered: VMs it no longer names lose theirs. */
  replace(credentials: readonly IssuedCredential[]): void {
    const byVm = new Map<string, { credential: string; claims: HostCredentialClaims }>();
    for (const { credential } of credentials) {
      const claims = decodeJws(credential).payload as HostCredentialClaims;
      for (const vmId of claims.vms) byVm.set(vmId, { credential, claims });
    }
    this.byVm = byVm;
  }

  /** Stops minting at once for VMs that no longer run here, without waiting for a refresh. */
  keepOnly(localVmIds: ReadonlySet<string>): void {
    for (const vmId of this.byVm.keys()) if (!localVmIds.has(vmId)) this.byVm.delete(vmId);
  }

  serviceAccountOf(vmId: string, now = Date.now()): string | undefined {
    return this.current(vmId, now)?.claims.sa;
  }

  /** The earliest expiry among held credentials, to refresh before it. */
  earliestExpiry(): number | undefined {
    const expiries = [...this.byVm.values()].map(({ claims }) => claims.exp * 1000);
    return expiries.length ? Math.min(...expiries) : undefined;
  }

  mint(vmId: string, audience: string, now = Date.now()): { token: string; expiresAt: number } | undefined {
    const held = this.current(vmId, now);
    if (!held) return undefined;
    this.minted++;
    return mintVmToken(this.signer, { credential: held.credential, claims: held.claims, vmId, audience, now });
  }

  private current(vmId: string, now: number) {
    const held = this.byVm.get(vmId);
    return held && held.claims.exp - now / 1000 > MIN_REMAINING_SECONDS ? held : undefined;
  }
}
