import { readFileSync, statSync } from 'node:fs';
import { ExchangeTokensError, exchangeTokenHash, parseExchangeTokens } from '#tokens/exchange-tokens.ts';

/** Who a request speaks for: the tenant of its token, or why it is refused. */
export type ExchangeAuthentication = { tenantId: string } | { refused: string };

/**
 * The exchange tokens a relay takes, from a file it re-reads when it changes (checked at most once
 * a second). A file that turns bad after start is logged and the tokens read before are kept.
 * Without a file the relay takes no request at all.
 */
export class ExchangeTokens {
  private tokens = new Map<string, string>();
  private checkedAt = 0;
  private modifiedAt = 0;
  private fixed = false;

  constructor(
    readonly file: string | undefined,
    private readonly log: (message: string) => void = () => {},
  ) {
    // At start a bad or missing file stops the agent: better than a relay that refuses everyone.
    if (file) this.load(true);
  }

  /** A fixed set, for tests and the bench. */
  static of(tokens: Record<string, string>): ExchangeTokens {
    const source = new ExchangeTokens(undefined);
    source.tokens = new Map(Object.entries(tokens).map(([token, tenantId]) => [exchangeTokenHash(token), tenantId]));
    source.fixed = true;
    return source;
  }

  get count(): number {
    return this.tokens.size;
  }

  /** Checks an `Authorization` header. */
  authenticate(authorization: string | undefined, now = Date.now()): ExchangeAuthentication {
    if (this.file && now - this.checkedAt >= 1000) this.load(false, now);
    if (!this.file && !this.fixed) return { refused: 'this bid relay takes no exchange: its operator has configured no exchange tokens (--bid-relay-tokens)' };
    if (!authorization) return { refused: 'an exchange token is required: Authorization: Bearer <token>' };
    const match = /^Bearer ([A-Za-z0-9_-]{1,200})$/.exec(authorization);
    if (!match) return { refused: 'Authorization must be "Bearer <token>"' };
    const tenantId = this.tokens.get(exchangeTokenHash(match[1]!));
    if (tenantId === undefined) return { refused: 'the exchange token is not valid on this host' };
    return { tenantId };
  }

  private load(atStart: boolean, now = Date.now()) {
    this.checkedAt = now;
    let modifiedAt: number;
    try {
      modifiedAt = statSync(this.file!).mtimeMs;
    } catch (error) {
      if (atStart) throw new ExchangeTokensError(`cannot read ${this.file}: ${(error as Error).message}`);
      // A removed file revokes every token: that is what an operator removing it means.
      if (this.modifiedAt !== -1) this.log(`bid relay: ${this.file} is gone (${(error as Error).message}); no exchange token is valid`);
      this.tokens = new Map();
      this.modifiedAt = -1;
      return;
    }
    if (!atStart && modifiedAt === this.modifiedAt) return;
    this.modifiedAt = modifiedAt;
    try {
      this.tokens = parseExchangeTokens(readFileSync(this.file!, 'utf8'), this.file);
      if (!atStart) this.log(`bid relay: ${this.tokens.size} exchange token(s) from ${this.file}`);
    } catch (error) {
      const message = error instanceof ExchangeTokensError ? error.message : `cannot read ${this.file}: ${(error as Error).message}`;
      if (atStart) throw new ExchangeTokensError(message);
      this.log(`bid relay: ${message}; keeping the ${this.tokens.size} token(s) read before`);
    }
  }
}
