/** `npm run bench:<name>` → bench/<name>.ts */
const [name] = process.argv.slice(2);
const benches: Record<string, () => Promise<unknown>> = {
  converge: () => import('./converge.ts'),
  tokens: () => import('./tokens.ts'),
  graph: () => import('./graph.ts'),
  bids: () => import('./bids.ts'),
  shuffle: () => import('./shuffle.ts'),
  // With --runtime qemu: real guests moving live (blackout-qemu.ts); else namespaces moved by the bench.
  blackout: () => (/--runtime[ =]qemu\b/.test(process.argv.slice(3).join(' ')) ? import('./blackout-qemu.ts') : import('./blackout.ts')),
  load: () => import('./load.ts'),
  cost: () => import('./cost.ts'),
  disks: () => import('./disks.ts'),
  boot: () => import('./boot.ts'),
  pairs: () => import('./pairs.ts'),
};
if (!name || !benches[name]) {
  console.error(`usage: bench <${Object.keys(benches).join('|')}>`);
  process.exit(2);
}
await benches[name]!();
