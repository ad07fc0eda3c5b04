import { parseArgs } from 'node:util';
import { KMSClient } from '@aws-sdk/client-kms';
import { deploymentFromEnvironment, keyAlias } from '#events/naming.ts';
import { Scope, scopesFor, type PrincipalKind } from '#events/tokens.ts';
import { issueApiToken, MAX_API_TOKEN_SECONDS } from '#tokens/api-tokens.ts';
import { KmsJwsSigner } from '#tokens/kms-signer.ts';
import { parseDuration } from './durations.ts';

const usage = `usage: npm run -s issue-token -- (--tenant ID | --host ID | --operator NAME) [--scopes a,b] [--ttl 12h] [--key KEY]

Issues an API bearer token signed by the API token KMS key and prints it on stdout.
  --tenant ID      a tenant token; scopes default to tenant:read,tenant:write (tenant:read for read-only)
  --host ID        a host agent's token (scope host); give it a long --ttl, e.g. 30d, and rotate it
  --operator NAME  an operator token (scope operator)
  --ttl            lifetime: 90s, 45m, 12h, 30d (default 12h, at most 90d)
  --key            KMS key id, ARN or alias (default alias/<deployment>/api-tokens: alias/stratoplane/api-tokens
                   unless STRATOPLANE_DEPLOYMENT names another deployment)
Needs kms:Sign on the key (the stack's TokenIssuerPolicy), with the AWS region and credentials of
the environment. Beside a running \`npm start\` in this folder, with no AWS_* setting given, it uses
that stack's local AWS (and says so on stderr).`;

function fail(message: string): never {
  console.error(`issue-token: ${message}\n\n${usage}`);
  process.exit(2);
}

const { values } = (() => {
  try {
    return parseArgs({
      options: {
        tenant: { type: 'string' },
        host: { type: 'string' },
        operator: { type: 'string' },
        scopes: { type: 'string' },
        ttl: { type: 'string', default: '12h' },
        key: { type: 'string', default: process.env.STRATOPLANE_API_TOKEN_KEY ?? keyAlias('api-tokens', deploymentFromEnvironment()) },
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
const subjects = (['tenant', 'host', 'operator'] as PrincipalKind[]).filter((kind) => values[kind] !== undefined);
if (subjects.length !== 1) fail('name exactly one of --tenant, --host, --operator');
const kind = subjects[0]!;
const scopes = values.scopes
  ? values.scopes.split(',').map((scope) => Scope.safeParse(scope.trim()).data ?? fail(`unknown scope ${scope}`))
  : [...scopesFor[kind]];

let ttlSeconds: number;
try {
  ttlSeconds = parseDuration(values.ttl!);
} catch (error) {
  fail((error as Error).message);
}
if (ttlSeconds < 60 || ttlSeconds > MAX_API_TOKEN_SECONDS) fail(`--ttl ${values.ttl}: from 60s to ${MAX_API_TOKEN_SECONDS / 86_400}d`);
const kms = new KMSClient({});
try {
  await kms.config.region();
} catch {
  console.error(
    'issue-token: the AWS region is not set: export AWS_REGION (and AWS_ENDPOINT_URL for a local AWS), or run it in the folder where `npm start` runs, to use its local AWS',
  );
  process.exit(1);
}
try {
  const { token, claims } = await issueApiToken(new KmsJwsSigner(kms, values.key!), { subject: `${kind}:${values[kind]}`, scopes, ttlSeconds });
  console.error(`issued ${claims.sub} [${claims.scope.join(' ')}] until ${new Date(claims.exp * 1000).toISOString()} (jti ${claims.jti})`);
  console.log(token);
} catch (error) {
  // Not the command line's fault: no usage, exit 1.
  console.error(`issue-token: ${(error as Error).message}`);
  process.exit(1);
}
