import type { AwsLookups } from './iam-check.ts';

const LOCAL_ACCOUNT = '000000000000';

/**
 * The facts the IAM check reads from the emulator itself, asked of it directly (not through the
 * proxy, so they are neither counted nor checked): a KMS key's ARN and aliases, a queue's tags.
 * Keys and aliases are cached (the template's never move during a run); queue tags until the
 * proxy sees them change.
 */
export class EmulatorLookups implements AwsLookups {
  private readonly keys = new Map<string, Promise<{ arn: string; aliases: string[] } | undefined>>();
  private readonly tags = new Map<string, Promise<Record<string, string>>>();

  constructor(private readonly target: URL) {}

  kmsKey(region: string, keyId: string): Promise<{ arn: string; aliases: string[] } | undefined> {
    const cacheKey = `${region}|${keyId}`;
    let found = this.keys.get(cacheKey);
    if (!found) {
      found = this.describeKey(region, keyId);
      this.keys.set(cacheKey, found);
      // A key that is not there yet may be made later: ask again next time.
      void found.then((key) => key ?? this.keys.delete(cacheKey));
    }
    return found;
  }

  queueTags(queueArn: string): Promise<Record<string, string>> {
    let found = this.tags.get(queueArn);
    if (!found) {
      const [, , , region, account, name] = queueArn.split(':');
      found = this.call(
        'sqs',
        region!,
        'AmazonSQS.ListQueueTags',
        { QueueUrl: `${this.target.origin}/queue/${region}/${account ?? LOCAL_ACCOUNT}/${name}` },
        '1.0',
      ).then((answer) => (answer?.Tags as Record<string, string> | undefined) ?? {});
      this.tags.set(queueArn, found);
    }
    return found;
  }

  /** Forgets a queue's tags (it was tagged, untagged, made or deleted). */
  queueChanged(queueArn: string): void {
    this.tags.delete(queueArn);
  }

  private async describeKey(region: string, keyId: string) {
    const described = await this.call('kms', region, 'TrentService.DescribeKey', { KeyId: keyId }, '1.1');
    const arn = (described?.KeyMetadata as { Arn?: string } | undefined)?.Arn;
    if (!arn) return undefined;
    const listed = await this.call('kms', region, 'TrentService.ListAliases', { KeyId: arn }, '1.1');
    const aliases = ((listed?.Aliases as { AliasName?: string }[] | undefined) ?? []).map((alias) => alias.AliasName!).filter(Boolean);
    return { arn, aliases };
  }

  private async call(service: string, region: string, target: string, body: unknown, jsonVersion: '1.0' | '1.1'): Promise<Record<string, unknown> | undefined> {
    const response = await fetch(this.target, {
      method: 'POST',
      headers: {
        'content-type': `application/x-amz-json-${jsonVersion}`,
        'x-amz-target': target,
        // The emulator reads account and region from the credential scope and checks no signature.
        authorization: `AWS4-HMAC-SHA256 Credential=AKIAIAMCHECKLOOKUP00/20260101/${region}/${service}/aws4_request, SignedHeaders=host, Signature=0`,
      },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    if (!response.ok) return undefined;
    return (await response.json()) as Record<string, unknown>;
  }
}
