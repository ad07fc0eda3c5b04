import { describe, expect, it } from 'vitest';
import { evaluate, type PolicyStatement, substituteVariables, wildcardMatch } from '../../local/aws/iam-policy.ts';

const table = 'arn:aws:dynamodb:us-east-1:000000000000:table/Metadata';
const allow = (statement: Omit<PolicyStatement, 'Effect'>): PolicyStatement => ({ Effect: 'Allow', ...statement });
const deny = (statement: Omit<PolicyStatement, 'Effect'>): PolicyStatement => ({ Effect: 'Deny', ...statement });

describe('the local IAM evaluator', () => {
  it('matches * and ? wildcards, actions without regard to case, resources with it', () => {
    expect(wildcardMatch('dynamodb:Get*', 'dynamodb:GetItem')).toBe(true);
    expect(wildcardMatch('kms:GenerateDataKey*', 'kms:GenerateDataKeyWithoutPlaintext')).toBe(true);
    expect(wildcardMatch('arn:aws:sqs:*:*:Stratoplane-host-?', 'arn:aws:sqs:us-east-1:0:Stratoplane-host-1')).toBe(true);
    expect(wildcardMatch('arn:aws:sqs:*:*:Stratoplane-host-?', 'arn:aws:sqs:us-east-1:0:Stratoplane-host-12')).toBe(false);
    // Regular-expression characters in a pattern are literal.
    expect(wildcardMatch('a.b', 'axb')).toBe(false);
    const statements = [allow({ Action: 'DynamoDB:getitem', Resource: table })];
    expect(evaluate(statements, { action: 'dynamodb:GetItem', resource: table }).decision).toBe('allow');
    expect(evaluate(statements, { action: 'dynamodb:GetItem', resource: table.toLowerCase() }).decision).toBe('implicit-deny');
  });

  it('refuses what no statement allows, and lets an explicit Deny win over any Allow', () => {
    const statements = [allow({ Action: 'dynamodb:*', Resource: '*' }), deny({ Action: 'dynamodb:DeleteItem', Resource: table })];
    expect(evaluate(statements, { action: 'dynamodb:PutItem', resource: table })).toEqual({ decision: 'allow', statements: [0] });
    expect(evaluate(statements, { action: 'dynamodb:DeleteItem', resource: table })).toEqual({ decision: 'explicit-deny', statements: [1] });
    expect(evaluate(statements, { action: 'sqs:SendMessage', resource: 'arn:aws:sqs:us-east-1:0:q' }).decision).toBe('implicit-deny');
    expect(evaluate([], { action: 'sqs:SendMessage', resource: '*' }).decision).toBe('implicit-deny');
  });

  it('reads NotAction and NotResource as everything but what they name', () => {
    const statements = [allow({ NotAction: 'dynamodb:Delete*', Resource: table }), allow({ Action: 'sqs:*', NotResource: 'arn:aws:sqs:*:*:private-*' })];
    expect(evaluate(statements, { action: 'dynamodb:PutItem', resource: table }).decision).toBe('allow');
    expect(evaluate(statements, { action: 'dynamodb:DeleteItem', resource: table }).decision).toBe('implicit-deny');
    expect(evaluate(statements, { action: 'sqs:SendMessage', resource: 'arn:aws:sqs:us-east-1:0:public-1' }).decision).toBe('allow');
    expect(evaluate(statements, { action: 'sqs:SendMessage', resource: 'arn:aws:sqs:us-east-1:0:private-1' }).decision).toBe('implicit-deny');
    // A Deny with NotResource refuses everything outside it.
    const fenced = [allow({ Action: 'dynamodb:GetItem', Resource: '*' }), deny({ Action: '*', NotResource: table })];
    expect(evaluate(fenced, { action: 'dynamodb:GetItem', resource: table }).decision).toBe('allow');
    expect(evaluate(fenced, { action: 'dynamodb:GetItem', resource: `${table}-other` }).decision).toBe('explicit-deny');
  });

  it("substitutes the principal's tags in resources and conditions, and a missing tag matches nothing", () => {
    const statements = [allow({ Action: 'sqs:ReceiveMessage', Resource: `arn:aws:sqs:us-east-1:0:host-\${aws:PrincipalTag/host-id}` })];
    const request = { action: 'sqs:ReceiveMessage', resource: 'arn:aws:sqs:us-east-1:0:host-a' };
    expect(evaluate(statements, request, { principalTags: { 'host-id': 'a' } }).decision).toBe('allow');
    expect(evaluate(statements, request, { principalTags: { 'host-id': 'b' } }).decision).toBe('implicit-deny');
    expect(evaluate(statements, { ...request, resource: 'arn:aws:sqs:us-east-1:0:host-' }, {}).decision).toBe('implicit-deny');
    expect(substituteVariables(`a-\${*}-\${aws:PrincipalTag/x}`, { principalTags: { x: 'y' } })).toBe('a-*-y');
    expect(substituteVariables(`\${aws:PrincipalTag/x}`, {})).toBeUndefined();
  });

  it('evaluates the condition operators the template uses: StringEquals, StringLike, ForAnyValue:StringEquals', () => {
    const key = 'arn:aws:kms:us-east-1:0:key/k';
    const pair = [allow({ Action: 'kms:Decrypt', Resource: key, Condition: { StringEquals: { 'kms:EncryptionContext:purpose': 'network-pair' } } })];
    expect(evaluate(pair, { action: 'kms:Decrypt', resource: key, context: { 'kms:EncryptionContext:purpose': 'network-pair' } }).decision).toBe('allow');
    expect(evaluate(pair, { action: 'kms:Decrypt', resource: key, context: { 'kms:EncryptionContext:purpose': 'other' } }).decision).toBe('implicit-deny');
    // No such key in the request: the condition fails.
    expect(evaluate(pair, { action: 'kms:Decrypt', resource: key }).decision).toBe('implicit-deny');

    const aliases = [
      allow({
        Action: 'kms:GetPublicKey',
        Resource: 'arn:aws:kms:eu-west-1:0:key/*',
        Condition: { 'ForAnyValue:StringEquals': { 'kms:ResourceAliases': 'alias/api' } },
      }),
    ];
    const other = 'arn:aws:kms:eu-west-1:0:key/x';
    expect(evaluate(aliases, { action: 'kms:GetPublicKey', resource: other, context: { 'kms:ResourceAliases': ['alias/a', 'alias/api'] } }).decision).toBe(
      'allow',
    );
    expect(evaluate(aliases, { action: 'kms:GetPublicKey', resource: other, context: { 'kms:ResourceAliases': ['alias/a'] } }).decision).toBe('implicit-deny');
    expect(evaluate(aliases, { action: 'kms:GetPublicKey', resource: other, context: { 'kms:ResourceAliases': [] } }).decision).toBe('implicit-deny');

    const tagged = [
      allow({ Action: 'sqs:SendMessage', Resource: '*', Condition: { StringLike: { 'aws:ResourceTag/job-hosts': `*/\${aws:PrincipalTag/host-id}/*` } } }),
    ];
    const send = (tag: string | undefined, hostId: string) =>
      evaluate(tagged, { action: 'sqs:SendMessage', resource: 'q', context: { 'aws:ResourceTag/job-hosts': tag } }, { principalTags: { 'host-id': hostId } })
        .decision;
    expect(send('/h-1/h-2/', 'h-2')).toBe('allow');
    expect(send('/h-1/h-22/', 'h-2')).toBe('implicit-deny');
    expect(send(undefined, 'h-2')).toBe('implicit-deny');
  });

  it('holds negated operators, IfExists and ForAllValues on a missing key, and reads Null and Bool', () => {
    const request = { action: 's3:GetObject', resource: 'arn:aws:s3:::b/k' };
    const withCondition = (Condition: PolicyStatement['Condition']) =>
      evaluate([allow({ Action: 's3:GetObject', Resource: '*', Condition })], request).decision;
    expect(withCondition({ StringNotEquals: { 's3:prefix': 'x' } })).toBe('allow');
    expect(withCondition({ StringEqualsIfExists: { 's3:prefix': 'x' } })).toBe('allow');
    expect(withCondition({ 'ForAllValues:StringEquals': { 'aws:TagKeys': 'x' } })).toBe('allow');
    expect(withCondition({ 'ForAnyValue:StringEquals': { 'aws:TagKeys': 'x' } })).toBe('implicit-deny');
    expect(withCondition({ Null: { 's3:prefix': 'true' } })).toBe('allow');
    expect(withCondition({ Null: { 's3:prefix': 'false' } })).toBe('implicit-deny');
    expect(
      evaluate([deny({ Action: '*', Resource: '*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })], {
        ...request,
        context: { 'aws:SecureTransport': 'false' },
      }).decision,
    ).toBe('explicit-deny');
  });

  it('throws on a condition operator it cannot evaluate, rather than guessing', () => {
    const statements = [allow({ Action: '*', Resource: '*', Condition: { NumericLessThan: { 's3:max-keys': '10' } } })];
    expect(() => evaluate(statements, { action: 's3:ListBucket', resource: '*', context: { 's3:max-keys': '5' } })).toThrow(/NumericLessThan/);
  });
});
