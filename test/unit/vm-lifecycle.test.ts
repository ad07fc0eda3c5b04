import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { VmLaunchSpec } from '#events/vm-config.ts';
import type { ReportVmStateRequest } from '#events/vm-lifecycle.ts';
import { STOP_REASONS, VmLifecycle } from '#host-agent/vm-lifecycle.ts';
import { NoRuntime } from '#host-agent/vm-runtime/no-runtime.ts';
import { ProcessRuntime } from '#host-agent/vm-runtime/process-runtime.ts';
import { VmStateReports } from '#host-agent/vm-state-reports.ts';

const vm = { vmId: 'vm-0000000000a1', ip: '10.0.0.5', networkId: 'net-1' };
const launch = (change: Partial<VmLaunchSpec> = {}): VmLaunchSpec => ({
  powerState: 'running',
  bootGeneration: 0,
  machineType: 's1.nano',
  memoryMiB: 96,
  vcpus: 1,
  hostname: 'web',
  ...change,
});

/** A lifecycle over real placeholder processes, and what it reported. */
function setUp() {
  const dir = mkdtempSync(path.join(tmpdir(), 'vm-lifecycle-'));
  const runtime = new ProcessRuntime({ stateDir: dir });
  const reports: ReportVmStateRequest[] = [];
  const lifecycle = new VmLifecycle({
    runtime,
    bootDir: path.join(dir, 'boot'),
    poolsDir: path.join(dir, 'pools'),
    report: (_vmId, report) => reports.push(report),
    log: () => {},
  });
  const states = () => reports.map((report) => report.state);
  return { dir, runtime, lifecycle, reports, states };
}

let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

describe('VmLifecycle', () => {
  it('boots a VM placed here, stops it when its owner does, boots it again for a start and a reboot, and removes it when it leaves', async () => {
    const { dir, runtime, lifecycle, reports, states } = setUp();
    cleanup = async () => {
      await lifecycle.close();
      rmSync(dir, { recursive: true, force: true });
    };
    // Placed, launch spec not fetched yet: nothing runs.
    lifecycle.update([vm], new Map());
    await lifecycle.settled();
    expect(runtime.report(vm.vmId)).toBeUndefined();

    lifecycle.update([vm], new Map([[vm.vmId, launch()]]));
    await lifecycle.settled();
    expect(runtime.report(vm.vmId)?.state).toBe('running');
    expect(states()).toEqual(['starting', 'running']);
    expect(reports[0]!.console ?? reports[1]!.console).toContain('stratoplane-guest: ready (process runtime');
    const firstPid = (runtime as unknown as { vms: Map<string, { process: { pid: number } }> }).vms.get(vm.vmId)!.process.pid;

    // The same spec again (a resync): nothing happens.
    lifecycle.update([vm], new Map([[vm.vmId, launch()]]));
    await lifecycle.settled();
    expect(states()).toEqual(['starting', 'running']);

    lifecycle.update([vm], new Map([[vm.vmId, launch({ powerState: 'stopped' })]]));
    await lifecycle.settled();
    expect(runtime.report(vm.vmId)?.state).toBe('stopped');
    expect(states().slice(-2)).toEqual(['stopping', 'stopped']);

    lifecycle.update([vm], new Map([[vm.vmId, launch({ bootGeneration: 1 })]]));
    await lifecycle.settled();
    expect(runtime.report(vm.vmId)?.state).toBe('running');

    // A reboot: a higher generation boots a new guest (a new process), stopping the old one first.
    lifecycle.update([vm], new Map([[vm.vmId, launch({ bootGeneration: 2 })]]));
    await lifecycle.settled();
    expect(states().slice(-4)).toEqual(['stopping', 'stopped', 'starting', 'running']);
    const pid = (runtime as unknown as { vms: Map<string, { process: { pid: number } }> }).vms.get(vm.vmId)!.process.pid;
    expect(pid).not.toBe(firstPid);
    expect(() => process.kill(firstPid, 0)).toThrow();

    lifecycle.update([], new Map());
    await lifecycle.settled();
    expect(runtime.report(vm.vmId)).toBeUndefined();
    expect(() => process.kill(pid, 0)).toThrow();
    // Reports are ordered by when they were seen, each strictly after the one before (the control
    // plane keeps only a strictly newer report, and a quick stop-then-boot fits in one millisecond).
    const times = reports.map((report) => report.observedAt);
    expect(times.every((time, index) => index === 0 || time > times[index - 1]!)).toBe(true);
  });

  it('reports a guest that dies as failed, and leaves it failed until its owner starts it again', async () => {
    const { dir, runtime, lifecycle, states } = setUp();
    cleanup = async () => {
      await lifecycle.close();
      rmSync(dir, { recursive: true, force: true });
    };
    lifecycle.update([vm], new Map([[vm.vmId, launch()]]));
    await lifecycle.settled();
    const { pid } = (runtime as unknown as { vms: Map<string, { process: { pid: number } }> }).vms.get(vm.vmId)!.process;
    process.kill(pid, 'SIGKILL');
    await expect.poll(() => runtime.report(vm.vmId)?.state).toBe('failed');
    expect(runtime.report(vm.vmId)?.reason).toContain('killed by SIGKILL');
    expect(states().at(-1)).toBe('failed');

    lifecycle.update([vm], new Map([[vm.vmId, launch()]]));
    await lifecycle.settled();
    expect(runtime.report(vm.vmId)?.state).toBe('failed');

    lifecycle.update([vm], new Map([[vm.vmId, launch({ bootGeneration: 1 })]]));
    await lifecycle.settled();
    expect(runtime.report(vm.vmId)?.state).toBe('running');
  });

  it('says why it stopped a VM: its owner, a reboot, its leaving, the agent shutting down; and what runs it', async () => {
    const { dir, lifecycle, reports } = setUp();
    cleanup = () => Promise.resolve(rmSync(dir, { recursive: true, force: true }));
    const ofState = (state: string) => reports.filter((report) => report.state === state).map((report) => report.reason);
    lifecycle.update([vm], new Map([[vm.vmId, launch()]]));
    await lifecycle.settled();
    lifecycle.update([vm], new Map([[vm.vmId, launch({ powerState: 'stopped' })]]));
    await lifecycle.settled();
    expect(reports.slice(-2)).toMatchObject([
      { state: 'stopping', reason: 'stopped by its owner' },
      { state: 'stopped', reason: 'stopped by its owner' },
    ]);
    lifecycle.update([vm], new Map([[vm.vmId, launch({ bootGeneration: 1 })]]));
    await lifecycle.settled();
    lifecycle.update([vm], new Map([[vm.vmId, launch({ bootGeneration: 2 })]]));
    await lifecycle.settled();
    expect(ofState('stopped').at(-1)).toBe('rebooted by its owner');
    lifecycle.update([], new Map());
    await lifecycle.settled();
    expect(ofState('stopped').at(-1)).toBe('stopped: the VM left this host (deleted or moved)');
    lifecycle.update([vm], new Map([[vm.vmId, launch({ bootGeneration: 3 })]]));
    await lifecycle.settled();
    await lifecycle.close();
    expect(ofState('stopped').at(-1)).toBe(STOP_REASONS.shutdown);
    // Never the runtime's own default while the agent knows why.
    expect(reports.map((report) => report.reason)).not.toContain('stopped by the host agent');
    // Every report says what runs the VM.
    expect(new Set(reports.map((report) => report.runtime))).toEqual(new Set(['process']));
  });

  it('on a host that runs no VMs, reports each VM placed there failed with why, once per boot its owner asks for', async () => {
    const reports: ReportVmStateRequest[] = [];
    const lifecycle = new VmLifecycle({
      runtime: new NoRuntime('--runtime qemu cannot run here: qemu-system-x86_64 is not installed'),
      bootDir: path.join(tmpdir(), 'unused'),
      poolsDir: path.join(tmpdir(), 'unused-pools'),
      report: (_vmId, report) => reports.push(report),
      log: () => {},
    });
    cleanup = () => lifecycle.close();
    lifecycle.update([vm], new Map([[vm.vmId, launch()]]));
    await lifecycle.settled();
    expect(reports).toEqual([
      {
        state: 'failed',
        reason: 'this host runs no VMs (--runtime qemu cannot run here: qemu-system-x86_64 is not installed); migrate the VM to a host that does',
        observedAt: expect.any(Number),
        runtime: 'none',
      },
    ]);
    // A resync changes nothing; a start (a higher generation) is answered the same way again.
    lifecycle.update([vm], new Map([[vm.vmId, launch()]]));
    await lifecycle.settled();
    expect(reports).toHaveLength(1);
    lifecycle.update([vm], new Map([[vm.vmId, launch({ bootGeneration: 1 })]]));
    await lifecycle.settled();
    expect(reports.map((report) => report.state)).toEqual(['failed', 'failed']);
  });

  it('reports a VM stopped before it ever ran as stopped', async () => {
    const { dir, lifecycle, states } = setUp();
    cleanup = async () => {
      await lifecycle.close();
      rmSync(dir, { recursive: true, force: true });
    };
    lifecycle.update([vm], new Map([[vm.vmId, launch({ powerState: 'stopped' })]]));
    await lifecycle.settled();
    expect(states()).toEqual(['stopped']);
  });
});

describe('ProcessRuntime', () => {
  it('kills the VM processes an earlier agent left behind, and only those', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'vm-leftovers-'));
    const earlier = new ProcessRuntime({ stateDir: dir });
    await earlier.start({ vmId: vm.vmId, memoryMiB: 96, vcpus: 1, settings: {} });
    const { pid } = (earlier as unknown as { vms: Map<string, { process: { pid: number } }> }).vms.get(vm.vmId)!.process;
    // The earlier agent died without stopping it: the next one finds it by its pid file and command line.
    const next = new ProcessRuntime({ stateDir: dir });
    expect(next.reclaimed).toEqual([vm.vmId]);
    await expect.poll(() => earlier.report(vm.vmId)?.state).toBe('failed');
    expect(() => process.kill(pid, 0)).toThrow();
    expect(new ProcessRuntime({ stateDir: dir }).reclaimed).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('VmStateReports', () => {
  it('sends the latest report of each VM, and sends a failed one again', async () => {
    const sent: [string, string][] = [];
    let failNext = 1;
    const reports = new VmStateReports(
      async (vmId, report) => {
        if (failNext-- > 0) throw new Error('unreachable');
        sent.push([vmId, report.state]);
      },
      () => {},
    );
    reports.record('vm-1', { state: 'starting', observedAt: 1 });
    await reports.settled();
    // Failed once; a newer report replaces it before the retry.
    reports.record('vm-1', { state: 'running', observedAt: 2 });
    reports.record('vm-2', { state: 'stopped', observedAt: 3 });
    await expect.poll(() => sent.length, { timeout: 5_000 }).toBe(2);
    expect(sent.sort()).toEqual([
      ['vm-1', 'running'],
      ['vm-2', 'stopped'],
    ]);
    await reports.stop();
  });

  it('keeps the console of a report a newer one replaced, sent or failed (a report carries it only when it changed)', async () => {
    const sent: { state: string; console?: string }[] = [];
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let failNext = 0;
    const reports = new VmStateReports(
      async (_vmId, report) => {
        // The first send hangs until released, so the next reports queue behind it.
        if (sent.length === 0) await held;
        if (failNext-- > 0) throw new Error('unreachable');
        sent.push({ state: report.state, ...(report.console === undefined ? {} : { console: report.console }) });
      },
      () => {},
    );
    reports.record('vm-1', { state: 'stopping', observedAt: 1 });
    // While that is on its way: the new guest runs and writes its console, then one more report without a change to it.
    reports.record('vm-1', { state: 'running', observedAt: 2, console: 'boot=2' });
    reports.record('vm-1', { state: 'running', observedAt: 3 });
    release();
    await expect.poll(() => sent.length).toBe(2);
    expect(sent[1]).toEqual({ state: 'running', console: 'boot=2' });

    // A report with a console fails; a newer one without comes before the retry: the console goes with it.
    failNext = 1;
    reports.record('vm-1', { state: 'running', observedAt: 4, console: 'boot=3' });
    await reports.settled();
    reports.record('vm-1', { state: 'stopping', observedAt: 5 });
    await expect.poll(() => sent.length, { timeout: 5_000 }).toBe(3);
    expect(sent[2]).toEqual({ state: 'stopping', console: 'boot=3' });
    await reports.stop();
  });
});
