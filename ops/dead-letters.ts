import { parseArgs } from 'node:util';
import { SQSClient } from '@aws-sdk/client-sqs';
import { findDeadLetterQueue, listDeadLetterQueues, peekDeadLetters, redriveDeadLetters } from './dead-letter-queues.ts';

const usage = `usage: npm run -s dead-letters -- <command> [options]

Reads and redrives the control plane's dead-letter queues in one region (AWS_REGION).
  list                       each dead-letter queue: messages waiting, and where they come from
  show NAME [--max 10]       the messages of one queue, each with the reason its handler gave up
                             (they stay in the queue)
  redrive NAME [--rate N]    moves them back to their source queue (SQS message move task), at most
                             N a second, and waits until the move is done
NAME is the short name list prints (fan-out, graph.fifo, image-copy, image-verify, host, …).
Needs sqs:ListQueues, GetQueueAttributes, ListDeadLetterSourceQueues, ReceiveMessage, and for
redrive StartMessageMoveTask and ListMessageMoveTasks, with the data key's kms:Decrypt and
GenerateDataKey. Beside a running \`npm start\` in this folder, with no AWS_* setting given, it uses
that stack's local AWS (and says so on stderr).`;

function fail(message: string, code = 2): never {
  console.error(`dead-letters: ${message}${code === 2 ? `\n\n${usage}` : ''}`);
  process.exit(code);
}

const { values, positionals } = (() => {
  try {
    return parseArgs({
      allowPositionals: true,
      options: {
        max: { type: 'string', default: '10' },
        rate: { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    return fail((error as Error).message);
  }
})();

if (values.help) {
  console.log(usage);
  process.exit(0);
}
const region = process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
if (!region) fail('set AWS_REGION to the region whose control plane to look at');
const sqs = new SQSClient({});
const [command, name] = positionals;
const print = (value: unknown, text: () => string) => console.log(values.json ? JSON.stringify(value, null, 2) : text());

try {
  switch (command) {
    case 'list': {
      const queues = await listDeadLetterQueues(sqs, region);
      print(queues, () =>
        [
          `${'NAME'.padEnd(18)} ${'MESSAGES'.padStart(8)}  SOURCES`,
          ...queues.map((queue) => `${queue.name.padEnd(18)} ${String(queue.messages).padStart(8)}  ${describeSources(queue.sourceUrls, queue.moreSources)}`),
        ].join('\n'),
      );
      break;
    }
    case 'show': {
      if (!name) fail('show needs the queue name');
      const max = Number(values.max);
      if (!Number.isInteger(max) || max < 1) fail('--max must be a positive integer');
      const letters = await peekDeadLetters(sqs, await findDeadLetterQueue(sqs, region, name), max);
      print(letters, () =>
        letters.length === 0
          ? `${name}: empty`
          : letters
              .map((letter) =>
                [
                  `message ${letter.messageId}`,
                  `  reason    ${letter.reason ?? '(moved by SQS after too many receives: the handler never settled it, e.g. it crashed or timed out)'}`,
                  ...(letter.sourceQueueArn ? [`  from      ${letter.sourceQueueArn}`] : []),
                  ...(letter.attempts ? [`  attempts  ${letter.attempts}${letter.failedAt ? `, the last at ${letter.failedAt}` : ''}`] : []),
                  `  body      ${letter.body.length > 300 ? `${letter.body.slice(0, 300)}… (${letter.body.length} characters)` : letter.body}`,
                ].join('\n'),
              )
              .join('\n\n'),
      );
      break;
    }
    case 'redrive': {
      if (!name) fail('redrive needs the queue name');
      const rate = values.rate === undefined ? undefined : Number(values.rate);
      if (rate !== undefined && !(Number.isInteger(rate) && rate >= 1 && rate <= 500)) fail('--rate must be an integer from 1 to 500 (SQS limit)');
      const queue = await findDeadLetterQueue(sqs, region, name);
      const result = await redriveDeadLetters(sqs, queue, { ratePerSecond: rate, onProgress: (moved, toMove) => console.error(`moved ${moved} of ${toMove}`) });
      print(
        result,
        () =>
          `${queue.name}: ${result.status.toLowerCase()}, ${result.moved} message(s) moved to ${result.destinationArn ?? 'their source queues'}${result.failureReason ? ` (${result.failureReason})` : ''}`,
      );
      if (result.status !== 'COMPLETED') process.exit(1);
      break;
    }
    default:
      fail(command ? `unknown command ${command}` : 'name a command');
  }
} catch (error) {
  fail((error as Error).message, 1);
}

function describeSources(urls: string[], more: boolean): string {
  const names = urls.map((url) => url.split('/').pop()!);
  if (names.length === 0) return '-';
  if (more) return `over ${names.length} queues (${names[0]}, …)`;
  return names.length <= 2 ? names.join(', ') : `${names.length} queues (${names[0]}, …)`;
}
