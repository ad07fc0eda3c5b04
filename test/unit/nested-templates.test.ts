import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { routesOf } from '../../local/api-gateway.ts';
import { readTemplate, withNestedStacks, type CfnTemplate } from '../../local/template.ts';

/** What the runner, the tests and the IAM check read of a stack with nested stacks (cdk/constructs/route-stacks.ts). */
describe('a template with its nested stacks merged in', () => {
  const hash = 'ab'.repeat(32);
  // biome-ignore lint/suspicious/noTemplateCurlyInString: CloudFormation's Fn::Sub syntax, not JavaScript's.
  const sub = 'table ${referencetoTableArn}';
  const parent: CfnTemplate = {
    Resources: {
      Api: { Type: 'AWS::ApiGateway::RestApi' },
      Table: { Type: 'AWS::DynamoDB::Table' },
      Routes: {
        Type: 'AWS::CloudFormation::Stack',
        Properties: {
          TemplateURL: { 'Fn::Join': ['', ['https://s3.us-east-1.', { Ref: 'AWS::URLSuffix' }, `/bucket/${hash}.json`]] },
          Parameters: {
            referencetoApiRef: { Ref: 'Api' },
            referencetoApiRoot: { 'Fn::GetAtt': ['Api', 'RootResourceId'] },
            referencetoTableArn: { 'Fn::GetAtt': ['Table', 'Arn'] },
          },
        },
      },
      Reader: { Type: 'AWS::IAM::Policy', Properties: { Name: { 'Fn::GetAtt': ['Routes', 'Outputs.FunctionArn'] } } },
    },
  };
  const nested = {
    Parameters: { referencetoApiRef: { Type: 'String' }, referencetoApiRoot: { Type: 'String' }, referencetoTableArn: { Type: 'String' } },
    Resources: {
      Things: {
        Type: 'AWS::ApiGateway::Resource',
        Properties: { ParentId: { Ref: 'referencetoApiRoot' }, PathPart: 'things', RestApiId: { Ref: 'referencetoApiRef' } },
      },
      GetThings: {
        Type: 'AWS::ApiGateway::Method',
        Properties: {
          HttpMethod: 'GET',
          ResourceId: { Ref: 'Things' },
          RestApiId: { Ref: 'referencetoApiRef' },
          Integration: { Uri: { 'Fn::Join': ['', ['arn:', { 'Fn::GetAtt': ['Fn', 'Arn'] }]] } },
        },
      },
      Fn: { Type: 'AWS::Lambda::Function', Properties: { Environment: { Variables: { TABLE: { 'Fn::Sub': sub } } } } },
    },
    Outputs: { FunctionArn: { Value: { 'Fn::GetAtt': ['Fn', 'Arn'] } } },
  };

  it("adds the nested stacks' resources, written as the parent names what they refer to", () => {
    const merged = withNestedStacks(parent, () => nested);
    expect(Object.keys(merged.Resources).sort()).toEqual(['Api', 'Fn', 'GetThings', 'Reader', 'Routes', 'Table', 'Things']);
    expect(merged.Resources.Things!.Properties).toEqual({
      ParentId: { 'Fn::GetAtt': ['Api', 'RootResourceId'] },
      PathPart: 'things',
      RestApiId: { Ref: 'Api' },
    });
    expect(merged.Resources.Fn!.Properties).toEqual({
      Environment: { Variables: { TABLE: { 'Fn::Sub': [sub, { referencetoTableArn: { 'Fn::GetAtt': ['Table', 'Arn'] } }] } } },
    });
    expect(merged.Resources.Reader!.Properties).toEqual({ Name: { 'Fn::GetAtt': ['Fn', 'Arn'] } });
    expect(routesOf(merged)).toEqual([{ method: 'GET', resourcePath: '/things', functionLogicalId: 'Fn', authorizerLogicalId: undefined }]);
  });

  it('refuses two stacks holding resources of one logical ID', () => {
    expect(() => withNestedStacks(parent, () => ({ Resources: { Table: { Type: 'AWS::DynamoDB::Table' } } }))).toThrow(
      'nested stack Routes and its parent (or another nested stack) both hold a resource Table',
    );
  });

  it("finds a nested template from a cdk.out folder through the stack's assets manifest", () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nested-templates-'));
    try {
      writeFileSync(path.join(dir, 'Stack.template.json'), JSON.stringify(parent));
      writeFileSync(path.join(dir, 'StackRoutes.nested.template.json'), JSON.stringify(nested));
      writeFileSync(
        path.join(dir, 'Stack.assets.json'),
        JSON.stringify({
          files: { [hash]: { source: { path: 'StackRoutes.nested.template.json', packaging: 'file' }, destinations: { d: { objectKey: `${hash}.json` } } } },
        }),
      );
      expect(readTemplate(path.join(dir, 'Stack.template.json'))).toEqual(withNestedStacks(parent, () => nested));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
