import { spawn } from 'node:child_process';

/** Runs an nftables script in a network namespace, as one transaction; `needFor` says what needs nftables when it is missing. */
export function nft(netns: string, script: string, needFor: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', netns, 'nft', '-f', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', (error) => reject(new Error(`nft: ${error.message} (nftables is needed for ${needFor} with --netns)`)));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`nft in ${netns}: ${stderr.trim() || `exit ${code}`}`))));
    child.stdin.end(script);
  });
}
