// Runs one Lambda function's bundle in a worker thread, with its own process.env, and serves
// invocations from the runner. Plain JavaScript: it loads the bundle exactly as Lambda would.
import { parentPort, workerData } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import path from 'node:path';

const { functionName, assetDir, handler, memorySize, logGroupName } = workerData;
const [file, exportName] = splitHandler(handler);
const module = await import(pathToFileURL(path.join(assetDir, await resolveModuleFile(assetDir, file))).href);
const fn = module[exportName];
if (typeof fn !== 'function') throw new Error(`${functionName}: ${handler} is not an exported function`);

parentPort.on('message', async ({ id, event, deadline, requestId }) => {
  const context = {
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:${process.env.AWS_REGION}:000000000000:function:${functionName}`,
    memoryLimitInMB: String(memorySize),
    awsRequestId: requestId,
    logGroupName,
    logStreamName: 'local',
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  };
  try {
    const result = await fn(event, context);
    parentPort.postMessage({ id, result });
  } catch (error) {
    parentPort.postMessage({
      id,
      error: { errorType: error?.name ?? 'Error', errorMessage: error?.message ?? String(error), stack: error?.stack },
    });
  }
});
parentPort.postMessage({ ready: true });

function splitHandler(value) {
  const dot = value.lastIndexOf('.');
  return [value.slice(0, dot), value.slice(dot + 1)];
}

async function resolveModuleFile(dir, base) {
  const { access } = await import('node:fs/promises');
  for (const extension of ['.mjs', '.js', '.cjs']) {
    try {
      await access(path.join(dir, base + extension));
      return base + extension;
    } catch {}
  }
  throw new Error(`${functionName}: no ${base}.mjs/.js/.cjs in ${dir}`);
}
