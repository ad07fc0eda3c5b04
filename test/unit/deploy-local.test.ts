import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cdkEnvironment } from '../../local/deploy/cdk-cli.ts';
import { readAssembly } from '../../local/deploy/steps.ts';

describe('npm run deploy:local', () => {
  const saved = { ...process.env };
  afterEach(() => {
    for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
    Object.assign(process.env, saved);
  });

  it('runs the cdk CLI against the emulator only: no profile, real credentials or other endpoint leak in, nothing phones home', () => {
    Object.assign(process.env, {
      AWS_PROFILE: 'production',
      AWS_SESSION_TOKEN: 'real-session',
      AWS_ACCESS_KEY_ID: 'AKIAREAL',
      AWS_ENDPOINT_URL_S3: 'https://s3.amazonaws.com',
      CDK_DEFAULT_ACCOUNT: '123456789012',
    });
    const env = cdkEnvironment({ endpoint: 'http://127.0.0.1:4599', region: 'eu-west-1', logFile: '/dev/null' });
    expect(Object.fromEntries(Object.entries(env).filter(([name]) => /^(AWS_|CDK_)/.test(name)))).toEqual({
      AWS_ENDPOINT_URL: 'http://127.0.0.1:4599',
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
      AWS_REGION: 'eu-west-1',
      AWS_DEFAULT_REGION: 'eu-west-1',
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      CDK_DISABLE_CLI_TELEMETRY: 'true',
      CDK_DISABLE_VERSION_CHECK: '1',
    });
  });

  it("reads the synthesized assembly's stacks: name, region and how many resources each template declares", () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'assembly-'));
    try {
      mkdirSync(dir, { recursive: true });
      writeFileSync(
        path.join(dir, 'manifest.json'),
        JSON.stringify({
          artifacts: {
            'Stratoplane-us-east-1.assets': { type: 'cdk:asset-manifest' },
            'Stratoplane-us-east-1': {
              type: 'aws:cloudformation:stack',
              environment: 'aws://unknown-account/us-east-1',
              properties: { templateFile: 'a.template.json' },
            },
            Second: {
              type: 'aws:cloudformation:stack',
              environment: 'aws://000000000000/eu-west-1',
              properties: { templateFile: 'b.template.json', stackName: 'Other' },
            },
          },
        }),
      );
      writeFileSync(path.join(dir, 'a.template.json'), JSON.stringify({ Resources: { A: {}, B: {} } }));
      writeFileSync(path.join(dir, 'b.template.json'), JSON.stringify({ Resources: { C: {} } }));
      expect(readAssembly(dir).stacks).toEqual([
        {
          stackName: 'Stratoplane-us-east-1',
          environment: 'aws://unknown-account/us-east-1',
          region: 'us-east-1',
          templateFile: path.join(dir, 'a.template.json'),
          resourceCount: 2,
        },
        {
          stackName: 'Other',
          environment: 'aws://000000000000/eu-west-1',
          region: 'eu-west-1',
          templateFile: path.join(dir, 'b.template.json'),
          resourceCount: 1,
        },
      ]);
      expect(readAssembly(dir, ['Other']).stacks.map((stack) => stack.stackName)).toEqual(['Other']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
