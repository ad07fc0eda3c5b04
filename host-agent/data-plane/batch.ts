import { spawn } from 'node:child_process';

/** Runs `ip`/`bridge` batch lines in a network namespace; returns what failed (`-force` goes on past errors). */
export async function batch(tool: 'ip' | 'bridge', netns: string, lines: string[]): Promise<string | undefined> {
  if (lines.length === 0) return undefined;
  return new Promise((resolve, reject) => {
    const child = spawn(tool, ['-n', netns, '-force', '-batch', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve(code === 0 ? undefined : stderr.trim() || `${tool} exited with ${code}`));
    child.stdin.end(`${lines.join('\n')}\n`);
  });
}
