import { describe, expect, it } from 'vitest';
import { dollarsOf, scaledToNetwork, type OperationCost } from '../../bench/cost-model.ts';

const cost = (name: string, sends: number, writeUnits: number): OperationCost => ({
  name,
  calls: new Map([['sqs SendMessage', sends]]),
  readUnits: 0,
  writeUnits,
  invocations: new Map([['FanOut', 1]]),
});

describe('the cost model', () => {
  it('moves an operation measured on four hosts by what each further host was measured to add', () => {
    const measured = { twoHosts: cost('two', 3, 10), fourHosts: cost('four', 5, 14) };
    const atTen = scaledToNetwork(cost('create', 5, 20), measured, 10);
    // Each host beyond four: one more message and two more write units.
    expect(atTen.calls.get('sqs SendMessage')).toBe(11);
    expect(atTen.writeUnits).toBe(32);
    expect(atTen.invocations.get('FanOut')).toBe(1);
  });

  it('prices an operation from its requests and units', () => {
    const counted = {
      apiRequests: () => 1,
      lambda: () => 2,
      sum: (operation: OperationCost, service: string) => (service === 'sqs' ? operation.calls.get('sqs SendMessage')! : 0),
    };
    // 1 API request ($3.50/M), 2 invocations ($0.87/M each), 4 SQS ($0.40/M), 8 write units ($0.625/M).
    expect(dollarsOf(counted, cost('x', 4, 8)) * 1e6).toBeCloseTo(3.5 + 2 * 0.86667 + 4 * 0.4 + 8 * 0.625, 3);
  });
});
