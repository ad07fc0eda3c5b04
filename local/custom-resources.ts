import * as dynamodb from '@aws-sdk/client-dynamodb';
import { resourcesOfType, type CfnTemplate, type Resolver } from './template.ts';

/** SDK clients and commands that `AwsCustomResource` calls may use locally, by CloudFormation service name. */
const services: Record<string, { client: { send(command: unknown): Promise<unknown> }; commands: Record<string, unknown> }> = {
  DynamoDB: { client: new dynamodb.DynamoDBClient({}), commands: dynamodb as unknown as Record<string, unknown> },
};

/**
 * Runs the template's `AwsCustomResource` calls (Custom::AWS) as CloudFormation would on create,
 * straight through the SDK, and records every field of the response as an attribute, so
 * `getResponseField('Table.LatestStreamArn')` resolves to the local value.
 */
export async function runCustomResources(template: CfnTemplate, resolver: Resolver): Promise<void> {
  for (const [id, resource] of resourcesOfType(template, 'Custom::AWS')) {
    const call = JSON.parse(resolver.resolveString(resource.Properties?.Create)) as { service: string; action: string; parameters?: Record<string, unknown> };
    const service = services[call.service];
    const action = call.action[0]!.toUpperCase() + call.action.slice(1);
    const Command = service?.commands[`${action}Command`] as (new (input: unknown) => unknown) | undefined;
    if (!service || !Command) throw new Error(`custom resource ${id}: ${call.service}.${call.action} is not one the local runner can make`);
    const response = await service.client.send(new Command(call.parameters ?? {}));
    for (const [path, value] of flatten(response)) resolver.setAttribute(id, path, String(value));
  }
}

/** Lambda functions that only serve custom resources: the runner made their calls itself. */
export function serviceTokenFunctions(template: CfnTemplate): Set<string> {
  const ids = new Set<string>();
  for (const resource of Object.values(template.Resources)) {
    if (!resource.Type.startsWith('Custom::')) continue;
    const token = resource.Properties?.ServiceToken as { 'Fn::GetAtt'?: [string, string] } | undefined;
    if (token?.['Fn::GetAtt']) ids.add(token['Fn::GetAtt'][0]);
  }
  return ids;
}

function* flatten(value: unknown, prefix = ''): Generator<[string, unknown]> {
  if (value instanceof Date) return yield [prefix, value.toISOString()];
  if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) if (key !== '$metadata') yield* flatten(item, prefix ? `${prefix}.${key}` : key);
    return;
  }
  if (prefix) yield [prefix, value];
}
