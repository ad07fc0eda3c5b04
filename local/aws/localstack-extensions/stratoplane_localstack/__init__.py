"""Stratoplane's plugins for the LocalStack that `npm run deploy:local` deploys the CDK template into.

They close two gaps of LocalStack's community edition run as a host process, through LocalStack's
own plugin entry points (see ../stratoplane_localstack-1.0.dist-info/entry_points.txt); this folder
is on that LocalStack's PYTHONPATH only (local/deploy/deploy-aws.ts), never on the integration
tests' or `npm start`'s:

* apigateway_authorizer: CloudFormation creates AWS::ApiGateway::Authorizer as AWS does, with
  API Gateway's CreateAuthorizer (LocalStack has no resource provider for it, and stands a fake id
  in that methods then refuse).
* create_only_executor: Lambda functions are created (code stored, version Active) without Docker;
  LocalStack's only runtime executor needs Docker and its runtime init binary from GitHub.
"""
