import { describe, expect, it } from 'vitest';
import { isUnavailable } from '#functions/triggers/api-handler.ts';

describe('isUnavailable', () => {
  it('calls lost connections, timeouts, throttling and AWS 5xx unavailable, and nothing else', () => {
    expect(isUnavailable(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }))).toBe(true);
    expect(isUnavailable(Object.assign(new Error('timed out'), { name: 'TimeoutError' }))).toBe(true);
    expect(isUnavailable(Object.assign(new Error('slow down'), { $retryable: { throttling: true } }))).toBe(true);
    expect(isUnavailable(Object.assign(new Error('internal'), { $fault: 'server' }))).toBe(true);
    expect(isUnavailable(Object.assign(new Error('condition'), { name: 'TransactionCanceledException', $fault: 'client' }))).toBe(false);
    expect(isUnavailable(new TypeError('x is undefined'))).toBe(false);
  });
});
