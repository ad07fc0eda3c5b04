import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { startLocalAws, type LocalAws } from '../aws/local-aws.ts';
import { projectRoot } from '../processes.ts';

/**
 * What CloudFormation needs beside the five services every run has (DynamoDB, DynamoDB Streams,
 * SQS, KMS, S3) to deploy the stack and its bootstrap stack: CloudFormation itself, IAM (roles,
 * policies), STS (the CLI's caller identity), SSM (the bootstrap version parameter), Lambda
 * (functions, permissions, event source mappings), API Gateway and CloudWatch Logs (log groups).
 * ECR is not needed: LocalStack's CloudFormation mocks the bootstrap stack's one repository.
 */
export const DEPLOY_SERVICES = ['cloudformation', 'iam', 'sts', 'ssm', 'lambda', 'apigateway', 'logs', 'events'] as const;

/**
 * Stratoplane's LocalStack plugins (local/aws/localstack-extensions/): on this LocalStack's import path only,
 * after LocalStack's own packages, so that one of them replaces LocalStack's plugin of the same name.
 */
export const extensionsDir = path.join(projectRoot, 'local', 'aws', 'localstack-extensions');

/**
 * Starts the LocalStack that `npm run deploy:local` deploys into: its own process, port and
 * filesystem root (never the one of `npm start` or of the integration tests), on 127.0.0.1, with
 * CloudFormation and the services the template uses, and five gaps of the community edition closed
 * by LocalStack's own plugin entry points:
 *
 * - `AWS::ApiGateway::Authorizer` is created through API Gateway's CreateAuthorizer, as on AWS;
 * - Lambda functions are created by the `create-only` runtime executor: code and configuration
 *   stored, version Active, nothing run (the only executor LocalStack has needs Docker and its
 *   runtime init binary from GitHub);
 * - `AWS::DynamoDB::GlobalTable` with a replica in another region (LocalStack's provider asks for
 *   a replica in the table's own region and for the first replica twice, which its DynamoDB refuses);
 * - CDK's `AwsCustomResource` (`Custom::AWS`, the replica region's DescribeTable): the community
 *   edition has no custom resources; the SDK call is made by the resource provider itself;
 * - a first deploy that fails rolls back as on AWS, deleting what it created (LocalStack's engine
 *   marks the stack ROLLBACK_COMPLETE and deletes nothing), by a start-up hook.
 *
 * Every other resource type is created by LocalStack's own provider. A type it has none for would
 * be stood in for by a placeholder (LocalStack refuses such templates outright only by asking its
 * vendor's servers which types exist, which this machine cannot): `fakedResourceTypes` finds them
 * in the log, and deploy:local and its test fail on any.
 */
export function startDeployAws(options: { port?: number; log?: (message: string) => void; logFile?: string } = {}): Promise<LocalAws> {
  return startLocalAws({
    port: options.port,
    log: options.log,
    logFile: options.logFile,
    ignoreEndpointUrl: true,
    extraServices: DEPLOY_SERVICES,
    extraEnv: (root) => {
      // Lambda keeps code archives under the temporary folder: this instance's own.
      const tmp = path.join(root, 'tmp');
      mkdirSync(tmp, { recursive: true });
      return {
        STRATOPLANE_LOCALSTACK_PLUGINS: extensionsDir,
        LAMBDA_RUNTIME_EXECUTOR: 'create-only',
        CFN_IGNORE_UNSUPPORTED_RESOURCE_TYPES: '1',
        // LocalStack asks its vendor's API (the service catalog) about operations it does not
        // implement, e.g. DescribeEvents' hook details the CLI reads after a failure: that question
        // fails here on the spot, on this machine, instead of trying the network.
        API_ENDPOINT: 'http://127.0.0.1:9',
        TMPDIR: tmp,
      };
    },
  });
}

/**
 * What LocalStack logged about resources it could not create or delete, and stacks it could not
 * delete: the reasons a failed deploy's CLI output leaves out (a stack delete that ends
 * DELETE_FAILED says nothing more there).
 */
export function deployFailureReasons(logFile: string): string[] {
  if (!existsSync(logFile)) return [];
  return readFileSync(logFile, 'utf8')
    .split('\n')
    .filter((line) => /Resource provider operation failed|Failed to delete stack|rollback of stack|Traceback|Error:/.test(line))
    .slice(-30);
}

/** Resource types the LocalStack logging to `logFile` deployed as placeholders, having no provider for them. */
export function fakedResourceTypes(logFile: string): string[] {
  if (!existsSync(logFile)) return [];
  const found = readFileSync(logFile, 'utf8').matchAll(/No resource provider found for "([^"]+)"/g);
  return [...new Set([...found].map((match) => match[1]!))].sort();
}
