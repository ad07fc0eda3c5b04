import http from 'node:http';
import type net from 'node:net';
import { z } from 'zod';
import { VerifyConnectionRequest } from '#events/api.ts';
import { resourceId } from '#events/identifiers.ts';
import type { PairTokenClaims } from '#tokens/pair-tokens.ts';
import { routingTableOf, vniOf } from './data-plane/desired-state.ts';
import { type NetworkPairs, PairConflict, type PairEnd } from './data-plane/network-pairs.ts';
import type { LocalVm } from './forwarding-table.ts';
import { closeServer } from './local-server.ts';
import type { AdmittedRecord } from './pair-records.ts';
import { PairRefusal } from './pair-refusal.ts';
import { readSmallBody } from './request-body.ts';

interface Admission {
  sourceVmId: string;
  destinationVmId: string;
  end: PairEnd;
  claims: PairTokenClaims;
  expiry: NodeJS.Timeout;
  /** False once its source network is no longer allowed: open connections last until the token expires, no new one opens. */
  newConnections: boolean;
}

export interface PairAdmissionsDeps {
  /** Checks a token for a local VM: genuine, for this host, unexpired, not revoked, never used before (pair-keys.ts). */
  verify(token: string, destinationVmId: string): Promise<PairTokenClaims>;
  /** Why an admitted pair may no longer flow (revoked since), if it may not. */
  refusal(claims: PairTokenClaims): string | undefined;
  /** Why a pair to a VM of `networkId` may open no new connection (its source network no longer allowed), if it may not. */
  closedToNewConnections(claims: PairTokenClaims, networkId: string): string | undefined;
  localVm(vmId: string): LocalVm | undefined;
  pairs: NetworkPairs;
  /** Called after every change to what is admitted (to keep the record of it). */
  changed(): void;
  /** Tells a pair's source host that its destination left this host (it renews the pair, and follows). */
  tellSourceMoved(sourceHost: string, notice: { sourceVmId: string; destinationVmId: string }): Promise<void>;
  /** A destination host says a pair's destination left it: `from` is the sender's underlay address. */
  destinationMoved(notice: { sourceVmId: string; destinationVmId: string }, from: string): void;
  log(message: string): void;
}

/**
 * The destination's half of a network pair: another host's agent presents the token its VM's pair
 * was minted with (`POST /v1/pairs` on this host's underlay address, port PAIR_PORT), and this
 * agent admits the flow (source VM's address → local VM's address, new connections in that
 * direction only; answers by conntrack) until the token expires, routing answers back to the
 * presenting host. The token must have been issued for the host that presents it (its `srcHost`),
 * so one taken off the wire and presented elsewhere admits nothing, and each token admits once
 * (a renewal presents a new one). A pair revoked, or whose destination left, is withdrawn at once,
 * its open connections with it; when the destination left, the source's host is told
 * (`POST /v1/pairs/moved`), so it asks for a new token at once and follows the VM to its new host.
 */
export class PairAdmissions {
  private readonly admitted = new Map<string, Admission>();
  private readonly server = http.createServer((request, response) => void this.serve(request, response));

  constructor(private readonly deps: PairAdmissionsDeps) {}

  /** Serves on a listening socket made on the host's underlay address. */
  async listen(on: net.Server): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(on, resolve));
  }

  /** Admits a pair presented by the host at `presenter`; returns until when. */
  async present(request: VerifyConnectionRequest, presenter: string): Promise<{ sourceVmId: string; admittedUntil: string }> {
    const vm = this.deps.localVm(request.destinationVmId);
    if (!vm) throw new PairRefusal(404, `vm ${request.destinationVmId} does not run on this host`);
    // Checked before the token is spent: a token presented by another host than its source's is not used up by it.
    const issuedFor = unverifiedSourceHost(request.token);
    if (issuedFor !== presenter)
      throw new PairRefusal(403, issuedFor ? `the token was issued for host ${issuedFor}, not ${presenter}` : 'the token names no source host');
    let claims: PairTokenClaims;
    try {
      claims = await this.deps.verify(request.token, request.destinationVmId);
    } catch (error) {
      throw new PairRefusal(403, (error as Error).message);
    }
    const closed = this.deps.closedToNewConnections(claims, vm.networkId);
    if (closed) throw new PairRefusal(403, closed);
    const key = `${claims.src}>${claims.dst}`;
    const end: PairEnd = { localIp: vm.ip, table: routingTableOf(vniOf(vm.networkId)), remoteIp: claims.srcIp, remoteHost: presenter };
    for (const other of this.admitted.values()) {
      if (other.end.remoteIp === end.remoteIp && other.end.table === end.table && other.sourceVmId !== claims.src)
        throw new PairRefusal(
          409,
          `address ${end.remoteIp} already has a pair into this network, from vm ${other.sourceVmId}: answers could not tell them apart`,
        );
    }
    const seconds = claims.exp - Date.now() / 1000;
    try {
      await this.deps.pairs.admit(end, seconds);
    } catch (error) {
      if (error instanceof PairConflict) throw new PairRefusal(409, error.message);
      throw error;
    }
    const before = this.admitted.get(key);
    if (before) clearTimeout(before.expiry);
    const expiry = setTimeout(() => void this.withdraw(key, 'its token expired'), seconds * 1000);
    expiry.unref();
    this.admitted.set(key, { sourceVmId: claims.src, destinationVmId: claims.dst, end, claims, expiry, newConnections: true });
    this.deps.changed();
    if (!before) this.deps.log(`network pair ${claims.src} (${claims.srcIp}, host ${presenter}) -> ${claims.dst} (${vm.ip}) admitted`);
    return { sourceVmId: claims.src, admittedUntil: new Date(claims.exp * 1000).toISOString() };
  }

  /** Withdraws the pairs whose destination left this host or that were revoked since (after the VMs or their revocations changed). */
  async recheck(): Promise<void> {
    for (const [key, admission] of this.admitted) {
      const vm = this.deps.localVm(admission.destinationVmId);
      if (!vm) {
        await this.withdraw(key, `vm ${admission.destinationVmId} left this host`);
        // The source would otherwise find out only at its next renewal.
        void this.deps.tellSourceMoved(admission.end.remoteHost, { sourceVmId: admission.sourceVmId, destinationVmId: admission.destinationVmId });
        continue;
      }
      const refusal = this.deps.refusal(admission.claims);
      if (refusal) {
        await this.withdraw(key, refusal);
        continue;
      }
      const closed = admission.newConnections ? this.deps.closedToNewConnections(admission.claims, vm.networkId) : undefined;
      if (closed) {
        admission.newConnections = false;
        this.deps.changed();
        await this.deps.pairs.closeToNewConnections(admission.end).catch((error: Error) => this.deps.log(`network pair ${key}: ${error.message}`));
        const until = new Date(admission.claims.exp * 1000).toISOString();
        this.deps.log(`network pair ${admission.sourceVmId} -> ${admission.destinationVmId} opens no new connection: ${closed}; open ones last until ${until}`);
      }
    }
  }

  list(): { sourceVmId: string; destinationVmId: string; sourceIp: string; sourceHost: string; until: string; newConnections: boolean }[] {
    return [...this.admitted.values()].map(({ sourceVmId, destinationVmId, end, claims, newConnections }) => ({
      sourceVmId,
      destinationVmId,
      sourceIp: end.remoteIp,
      sourceHost: end.remoteHost,
      until: new Date(claims.exp * 1000).toISOString(),
      newConnections,
    }));
  }

  /** What is admitted, for the record that outlives the agent. */
  records(): AdmittedRecord[] {
    return [...this.admitted.values()].map(({ claims, end, newConnections }) => ({ claims, end, newConnections }));
  }

  /** Takes over what the agent before this one admitted (still in the kernel): it expires, is rechecked and withdrawn as if admitted here. */
  restore(records: readonly AdmittedRecord[]): void {
    for (const { claims, end, newConnections } of records) {
      const key = `${claims.src}>${claims.dst}`;
      this.deps.pairs.adopt(end, true);
      const expiry = setTimeout(() => void this.withdraw(key, 'its token expired'), claims.exp * 1000 - Date.now());
      expiry.unref();
      this.admitted.set(key, { sourceVmId: claims.src, destinationVmId: claims.dst, end, claims, expiry, newConnections });
    }
  }

  /** Stops serving; what is admitted stays in the kernel until its timeout, so flows survive an agent restart. */
  async close(): Promise<void> {
    for (const admission of this.admitted.values()) clearTimeout(admission.expiry);
    if (this.server.listening) await closeServer(this.server);
  }

  private async withdraw(key: string, why: string): Promise<void> {
    const admission = this.admitted.get(key);
    if (!admission) return;
    this.admitted.delete(key);
    clearTimeout(admission.expiry);
    this.deps.changed();
    await this.deps.pairs.withdrawAdmission(admission.end).catch((error: Error) => this.deps.log(`network pair ${key}: ${error.message}`));
    this.deps.log(`network pair ${admission.sourceVmId} -> ${admission.destinationVmId} withdrawn: ${why}`);
  }

  private async serve(request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
    const reply = (status: number, body: unknown): void => {
      response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    if (request.method !== 'POST' || (request.url !== '/v1/pairs' && request.url !== '/v1/pairs/moved'))
      return reply(404, { message: 'POST /v1/pairs {destinationVmId, token}, POST /v1/pairs/moved {sourceVmId, destinationVmId}' });
    const text = await readSmallBody(request, 4096);
    const presenter = request.socket.remoteAddress?.replace(/^::ffff:/, '') ?? '';
    let json: unknown;
    try {
      json = JSON.parse(text ?? '');
    } catch {
      return reply(400, { message: 'the body is not JSON' });
    }
    if (request.url === '/v1/pairs/moved') {
      const notice = MovedNotice.safeParse(json);
      if (!notice.success) return reply(400, { message: 'body: {sourceVmId, destinationVmId}' });
      this.deps.destinationMoved(notice.data, presenter);
      return reply(202, { message: 'noted' });
    }
    const parsed = VerifyConnectionRequest.safeParse(json);
    if (!parsed.success) return reply(400, { message: `body: ${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}` });
    try {
      reply(200, await this.present(parsed.data, presenter));
    } catch (error) {
      if (error instanceof PairRefusal) return reply(error.status, { message: error.message });
      this.deps.log(`network pair from ${presenter}: ${(error as Error).message}`);
      reply(500, { message: 'the pair could not be admitted' });
    }
  }
}

const MovedNotice = z.strictObject({ sourceVmId: resourceId, destinationVmId: resourceId });

/** The `srcHost` a token says, before anything is checked: only to refuse a wrong presenter early. */
function unverifiedSourceHost(token: string): string | undefined {
  try {
    const claims = JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString('utf8')) as { srcHost?: unknown };
    return typeof claims.srcHost === 'string' ? claims.srcHost : undefined;
  } catch {
    return undefined;
  }
}
