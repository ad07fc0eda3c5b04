import path from 'node:path';
import { Validations, type App } from 'aws-cdk-lib';
import type { CloudAssembly } from 'aws-cdk-lib/cx-api';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../cdk/app-builder.ts';
import { readTemplate } from '../../local/template.ts';

type Statement = { Action: string | string[]; Resource: unknown; Effect: string };

/*
 * cdk-nag's AwsSolutions checks run in every synth (cdk/nag.ts): a finding neither fixed nor
 * acknowledged with its reason fails `cdk synth`, the local runner and these tests.
 */
describe.each(['us-east-1', 'us-east-1,eu-west-1'])('cdk-nag AwsSolutions, regions %s', (regions) => {
  let app: App;
  let stacks: ReturnType<typeof buildApp>['stacks'];
  let assembly: CloudAssembly;
  beforeAll(() => {
    // Bundling is skipped: the checks look at the template, not the code. The synth runs them.
    ({ app, stacks } = buildApp({ context: { regions, 'aws:cdk:bundling-stacks': [] } }));
    assembly = app.synth();
  }, 120_000);

  it('synthesizes with no unacknowledged error or warning', () => {
    expect(assembly.stacks.map((stack) => stack.stackName).sort()).toEqual([...stacks.values()].map((stack) => stack.stackName).sort());
    // The same checks, read directly: what a failed synth would name, one line a finding.
    const { violations } = new AwsSolutionsChecks().validateScope(app);
    const findings = violations.flatMap((violation) =>
      violation.violatingResources.map((resource) => `${violation.severity} ${violation.ruleName} ${resource.constructPath}`),
    );
    expect(findings).toEqual([]);
  }, 60_000);

  it('gives every acknowledgement a reason', () => {
    const acknowledgements = [...stacks.values()].flatMap((stack) =>
      stack.node
        .findAll()
        .flatMap((construct) => construct.node.metadata.filter((entry) => entry.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY))
        .flatMap((entry) => Object.entries(entry.data as Record<string, string>)),
    );
    expect(acknowledgements.length).toBeGreaterThan(0);
    for (const [id, reason] of acknowledgements) {
      expect(id).toMatch(/^Annotation::AwsSolutions-[A-Z]+\d+(\[.+\])?$/);
      expect(reason.length, id).toBeGreaterThan(40);
    }
  });

  // The acknowledgements of `*` and of KMS action families hold only while these do.
  it('grants `*` to X-Ray actions only, and the KMS action families to the data key only', () => {
    for (const stack of stacks.values()) {
      // With its nested route stacks' roles.
      const resources = Object.values(readTemplate(path.join(assembly.directory, stack.templateFile)).Resources) as { Type: string; Properties: any }[];
      const statements = resources
        .filter((resource) => resource.Type === 'AWS::IAM::Policy' || resource.Type === 'AWS::IAM::ManagedPolicy')
        .flatMap((resource) => resource.Properties.PolicyDocument.Statement as Statement[]);
      for (const statement of statements) {
        const actions = [statement.Action].flat();
        if ([statement.Resource].flat().includes('*'))
          expect(
            actions.every((action) => action.startsWith('xray:')),
            JSON.stringify(statement),
          ).toBe(true);
        if (actions.some((action) => action === 'kms:ReEncrypt*' || action === 'kms:GenerateDataKey*'))
          expect(JSON.stringify(statement.Resource), JSON.stringify(statement)).toMatch(/^\{"Fn::GetAtt":\["DataKey[0-9A-F]{8}","Arn"\]\}$/);
      }
    }
  });
});
