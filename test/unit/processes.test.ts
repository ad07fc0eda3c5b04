import { describe, expect, it } from 'vitest';
import { NotReadyError, startTsProcess } from '../../local/processes.ts';

describe('a process that is never ready', () => {
  it('is killed past its time, and the error says what it was doing: its stack and what its event loop waited on', async () => {
    const started = startTsProcess({ entry: 'test/fixtures/never-ready.ts', readyPrefix: 'NEVER_READY', timeoutMs: 4000 });
    const error = await started.then(
      () => undefined,
      (error: Error) => error,
    );
    expect(error).toBeInstanceOf(NotReadyError);
    expect(error!.message).toMatch(/was not ready within 4s \(load average [\d.]+; its stack: .*; waiting on: .*timer/);
  }, 20_000);
});
