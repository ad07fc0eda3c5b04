"""Stratoplane's plugins for the LocalStack that `npm run deploy:local` deploys the CDK template into.

They close five gaps of LocalStack's community edition run as a host process, through LocalStack's
own plugin entry points (see ../stratoplane_localstack-1.0.dist-info/entry_points.txt); this folder
is on that LocalStack's import path only, after LocalStack's own packages
(STRATOPLANE_LOCALSTACK_PLUGINS, set by local/deploy/deploy-aws.ts and read by
local/aws/localstack_launcher.py), never on the integration tests' or `npm start`'s:

* apigateway_authorizer: CloudFormation creates AWS::ApiGateway::Authorizer as AWS does, with
  API Gateway's CreateAuthorizer (LocalStack has no resource provider for it, and stands a fake id
  in that methods then refuse).
* create_only_executor: Lambda functions are created (code stored, version Active) without Docker;
  LocalStack's only runtime executor needs Docker and its runtime init binary from GitHub.
* dynamodb_global_table: replaces LocalStack's AWS::DynamoDB::GlobalTable provider, which cannot
  create a replica in another region (it asks for the first replica twice, its own region's too).
* aws_custom_resource: CDK's AwsCustomResource (Custom::AWS), whose SDK call it makes itself; the
  community edition has no custom resources.
* create_rollback: a stack whose first deploy fails is rolled back as on AWS (what it created is
  deleted, Retain aside); LocalStack's engine marks it ROLLBACK_COMPLETE and deletes nothing.
"""
