import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const functionsDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../functions');

/**
 * The handler module of an operation: `createVm` → `functions/compute/api/create-vm.ts`. A route's
 * handler lives in its bounded context's `api/` folder, named after the operation; exactly one
 * context may hold it.
 */
export function apiHandlerEntry(operationId: string): string {
  const file = `${operationId.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)}.ts`;
  const found = readdirSync(functionsDir).filter((context) => existsSync(path.join(functionsDir, context, 'api', file)));
  if (found.length !== 1) throw new Error(`operation ${operationId}: expected one functions/<context>/api/${file}, found ${found.length}`);
  return `functions/${found[0]}/api/${file}`;
}
