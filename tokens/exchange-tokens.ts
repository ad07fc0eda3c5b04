import { createHash, randomBytes } from 'node:crypto';
import { resourceId } from '#events/identifiers.ts';

/**
 * Exchange tokens: what an ad exchange presents to a host's bid relay (`Authorization: Bearer
 * sbx_…`), one or more per tenant. An operator mints one (`npm run -s bid-exchange-token --
 * --tenant ID`), gives the token to the exchange and adds the line it prints — the tenant and the
 * token's SHA-256, never the token — to the tokens file of every host the tenant's bidders run on
 * (`--bid-relay-tokens`). Revoking is deleting the line; the agent re-reads the file within a
 * second of a change, without a restart.
 *
 * File format, one token a line, `#` starts a comment:
 *
 *   <tenant-id> sha256:<64 hex digits> [label…]
 */
export const EXCHANGE_TOKEN_PREFIX = 'sbx_';

/** A new exchange token: 32 random bytes. */
export function mintExchangeToken(): string {
  return `${EXCHANGE_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
}

export const exchangeTokenHash = (token: string) => `sha256:${createHash('sha256').update(token).digest('hex')}`;

/** The tokens file's line for a token. */
export const exchangeTokenLine = (tenantId: string, token: string, label?: string) => `${tenantId} ${exchangeTokenHash(token)}${label ? ` ${label}` : ''}`;

export class ExchangeTokensError extends Error {}

/** Parses a tokens file: token hash → tenant id. Throws an ExchangeTokensError naming the first bad line. */
export function parseExchangeTokens(text: string, source = 'the exchange tokens file'): Map<string, string> {
  const tokens = new Map<string, string>();
  text.split('\n').forEach((raw, index) => {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) return;
    const [tenantId, hash] = line.split(/\s+/);
    const where = `${source}, line ${index + 1}`;
    if (!resourceId.safeParse(tenantId).success) throw new ExchangeTokensError(`${where}: ${JSON.stringify(tenantId)} is not a tenant id`);
    if (!hash || !/^sha256:[0-9a-f]{64}$/.test(hash)) throw new ExchangeTokensError(`${where}: the second field must be sha256:<64 lowercase hex digits>`);
    const other = tokens.get(hash);
    if (other !== undefined && other !== tenantId) throw new ExchangeTokensError(`${where}: the same token is listed for tenants ${other} and ${tenantId}`);
    tokens.set(hash, tenantId!);
  });
  return tokens;
}
