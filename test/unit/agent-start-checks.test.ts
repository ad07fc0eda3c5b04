import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { KMSClient } from '@aws-sdk/client-kms';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { HostAgent } from '../../host-agent/agent.ts';
import { AgentStartError } from '../../host-agent/start-checks.ts';

/** The API, faked on loopback: `answers` by "METHOD path", 404 for anything else; every request seen. */
let answers: Record<string, { status: number; body?: unknown }>;
let seen: string[];
let server: Server;
let apiUrl: string;

beforeAll(async () => {
  server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      const key = `${request.method} ${request.url!.replace(/^\/v1/, '')}`;
      seen.push(key);
      const answer = answers[key] ?? { status: 404, body: { message: 'not found' } };
      response.writeHead(answer.status, { 'content-type': 'application/json' });
      response.end(JSON.stringify(answer.body ?? {}));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
beforeEach(() => {
  answers = {};
  seen = [];
  vi.spyOn(console, 'error').mockImplementation(() => {});
});

const queueUrl = 'http://127.0.0.1:4566/queue/us-east-1/000000000000/stratoplane-us-east-1-host-h1';
const registered = {
  status: 201,
  body: { hostId: 'h1', address: '192.0.2.50', capacity: 4, vmCount: 0, queueUrl, createdAt: new Date().toISOString() },
};

/** An SQS client as far as the agent uses one: its settings, GetQueueUrl, and receives that bring one message and then wait. */
function fakeSqs(options: { region?: string; queue?: 'ok' | Error } = {}) {
  const sent: string[] = [];
  let delivered = false;
  const sqs = {
    config: {
      region: async () => {
        if (!options.region) throw new Error('Region is missing');
        return options.region;
      },
      credentials: async () => ({ accessKeyId: 'test', secretAccessKey: 'test' }),
    },
    send: async (command: { constructor: { name: string } }, sendOptions?: { abortSignal?: AbortSignal }) => {
      sent.push(command.constructor.name);
      if (command.constructor.name === 'GetQueueUrlCommand') {
        if (options.queue instanceof Error) throw options.queue;
        return { QueueUrl: queueUrl };
      }
      if (command.constructor.name === 'ReceiveMessageCommand' && !delivered) {
        delivered = true;
        return { Messages: [{ MessageId: 'm1', ReceiptHandle: 'r1', Body: 'not a batch' }] };
      }
      // An empty long poll that ends when the consumer stops.
      await new Promise((resolve) => sendOptions?.abortSignal?.addEventListener('abort', resolve));
      throw new Error('aborted');
    },
  };
  return { sqs: sqs as unknown as SQSClient, sent };
}

const agentWith = (sqs: SQSClient, timeoutMs = 2_000) =>
  new HostAgent(
    {
      hostId: 'h1',
      address: '192.0.2.50',
      capacity: 4,
      apiUrl,
      token: () => 'a-host-token-long-enough',
      controlSocket: '',
      bidPort: 0,
      spillDir: path.join(tmpdir(), 'agent-start-checks'),
      resyncIntervalMs: 300_000,
      hostServices: false,
      startChecks: { timeoutMs },
    },
    sqs,
    {} as KMSClient,
  );

describe('an agent started by people checks what it needs before it says it is ready', () => {
  it('refuses to start without an AWS region, before calling anything', async () => {
    const start = agentWith(fakeSqs().sqs).start();
    await expect(start).rejects.toThrow(AgentStartError);
    await expect(start).rejects.toThrow(
      'cannot start: the AWS region is not set: export AWS_REGION (and AWS_ENDPOINT_URL for a local AWS); beside `npm start`, `npm run agent -- --host h1` gives it all',
    );
    expect(seen).toEqual([]);
  });

  it('stops at once when the API refuses the host', async () => {
    answers['POST /hosts'] = { status: 401, body: { message: 'Unauthorized' } };
    const began = Date.now();
    await expect(agentWith(fakeSqs({ region: 'us-east-1' }).sqs, 10_000).start()).rejects.toThrow(
      `cannot start: the API at ${apiUrl} refused to register the host: POST /hosts: 401`,
    );
    expect(Date.now() - began).toBeLessThan(2_000);
    expect(seen).toEqual(['POST /hosts']);
  });

  it('gives up on an API that fails past its start timeout', async () => {
    answers['POST /hosts'] = { status: 503, body: { message: 'Service Unavailable' } };
    await expect(agentWith(fakeSqs({ region: 'us-east-1' }).sqs, 700).start()).rejects.toThrow(
      `cannot start: could not register with the API at ${apiUrl} within 0.7 s (POST /hosts: 503`,
    );
    expect(seen.length).toBeGreaterThan(1);
  });

  it('refuses to start when its queue cannot be reached through AWS', async () => {
    answers['POST /hosts'] = registered;
    const refused = Object.assign(new Error('The security token included in the request is invalid.'), { name: 'InvalidClientTokenId' });
    await expect(agentWith(fakeSqs({ region: 'us-east-1', queue: refused }).sqs).start()).rejects.toThrow(
      /^cannot start: its queue stratoplane-us-east-1-host-h1 cannot be reached through AWS.* in us-east-1 \(InvalidClientTokenId: The security token included in the request is invalid\.\)/,
    );
  });

  it('starts when all is there, and its status shows when its queue last brought a message', async () => {
    answers['POST /hosts'] = registered;
    answers['GET /hosts/h1/forwarding-table'] = { status: 200, body: { hostId: 'h1', networks: [] } };
    const { sqs, sent } = fakeSqs({ region: 'us-east-1' });
    const agent = agentWith(sqs);
    await agent.start();
    try {
      expect(sent.slice(0, 2)).toEqual(['GetQueueUrlCommand', 'ReceiveMessageCommand']);
      await vi.waitFor(() => expect(agent.statusReport().queue?.lastMessageAt).not.toBeNull());
      expect(agent.statusReport().queue).toMatchObject({ failing: false, receiveErrors: 0, lastReceiveError: null, lastReceiveAt: expect.any(String) });
    } finally {
      await agent.stop();
    }
  });
});
