/**
 * Token ids already admitted, each kept until its token expires (then a replay fails on expiry
 * anyway), so memory stays bounded by the tokens issued within one lifetime.
 */
export class UsedTokens {
  /** jti → expiry (s since epoch). Tokens live equally long, so insertion order is expiry order. */
  private readonly used = new Map<string, number>();

  /** True the first time a token id is seen; false for a replay. */
  admit(jti: string, exp: number, now = Date.now()): boolean {
    for (const [id, expiry] of this.used) {
      if (expiry > now / 1000) break;
      this.used.delete(id);
    }
    if (this.used.has(jti)) return false;
    this.used.set(jti, exp);
    return true;
  }

  get size(): number {
    return this.used.size;
  }
}
