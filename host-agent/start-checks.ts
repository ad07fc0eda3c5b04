import { GetQueueUrlCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { ApiError } from '#events/api-client.ts';

/**
 * What a starting agent checks before it says it is ready, so that one started without what it
 * needs exits at once with one line naming what is missing, instead of seeming to run while it
 * receives nothing.
 */
export class AgentStartError extends Error {
  override readonly name = 'AgentStartError';
}

const besideNpmStart = (hostId: string) => `beside \`npm start\`, \`npm run agent -- --host ${hostId}\` gives it all`;

/** A region and credentials, as the SDK finds them (environment, profile, the host's role); nothing is sent to AWS. */
export async function checkAwsSettings(sqs: SQSClient, hostId: string): Promise<void> {
  try {
    await sqs.config.region();
  } catch {
    throw new AgentStartError(`cannot start: the AWS region is not set: export AWS_REGION (and AWS_ENDPOINT_URL for a local AWS); ${besideNpmStart(hostId)}`);
  }
  try {
    await sqs.config.credentials();
  } catch (error) {
    throw new AgentStartError(
      `cannot start: no AWS credentials (${(error as Error).message}): give the host its role, or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; ${besideNpmStart(hostId)}`,
    );
  }
}

/**
 * Asks AWS for the host's own queue by name (sqs:GetQueueUrl, which its role grants): AWS answers
 * at the endpoint and region given, and takes the host's credentials. Receiving would hide messages.
 */
export async function checkQueue(sqs: SQSClient, queueUrl: string, timeoutMs: number): Promise<void> {
  const name = new URL(queueUrl).pathname.split('/').filter(Boolean).at(-1)!;
  try {
    await sqs.send(new GetQueueUrlCommand({ QueueName: name }), { abortSignal: AbortSignal.timeout(timeoutMs) });
  } catch (error) {
    const endpoint = process.env.AWS_ENDPOINT_URL_SQS ?? process.env.AWS_ENDPOINT_URL;
    throw new AgentStartError(
      `cannot start: its queue ${name} cannot be reached through AWS${endpoint ? ` at ${endpoint}` : ''} in ${await sqs.config.region()} (${(error as Error).name}: ${(error as Error).message}): check AWS_ENDPOINT_URL, AWS_REGION and the host's credentials (its role needs the stack's HostAgentPolicy)`,
    );
  }
}

/** An answer that trying again will not change: the API refused the host (a bad token, a wrong URL, an address in use). */
export function refusedForGood(error: unknown): error is ApiError {
  return error instanceof ApiError && error.status >= 400 && error.status < 500 && error.status !== 408 && error.status !== 429;
}
