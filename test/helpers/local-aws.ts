import { CreateTableCommand, DescribeTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { inject } from 'vitest';

/** Client settings for the local AWS the integration run started. */
export const localAwsConfig = () => ({
  endpoint: inject('awsEndpoint'),
  region: inject('region'),
  credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
});

/** A fresh table keyed by `pk` with a NEW_AND_OLD_IMAGES stream; returns the stream ARN. */
export async function createStreamTable(dynamodb: DynamoDBClient, TableName: string): Promise<string> {
  await dynamodb.send(
    new CreateTableCommand({
      TableName,
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
      BillingMode: 'PAY_PER_REQUEST',
      StreamSpecification: { StreamEnabled: true, StreamViewType: 'NEW_AND_OLD_IMAGES' },
    }),
  );
  const { Table } = await dynamodb.send(new DescribeTableCommand({ TableName }));
  return Table!.LatestStreamArn!;
}
