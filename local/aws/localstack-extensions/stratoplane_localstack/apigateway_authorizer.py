"""CloudFormation resource provider for AWS::ApiGateway::Authorizer.

LocalStack's community edition ships none: CloudFormation then "deploys" the authorizer as an
unsupported resource with a made-up physical id, and every AWS::ApiGateway::Method that names it
fails (API Gateway rejects the unknown authorizer id). This provider does what AWS's own does:
CreateAuthorizer on the stack's REST API on create, UpdateAuthorizer (patch operations) on update,
DeleteAuthorizer on delete. Its Ref is the authorizer id (LocalStack's PHYSICAL_RESOURCE_ID_SPECIAL_CASES
already maps this type to /properties/AuthorizerId).

The schema beside it is the public AWS resource schema of the type (properties, identifiers,
create-only and read-only properties), which LocalStack's engine reads to tell updates from replacements.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

import localstack.services.cloudformation.provider_utils as util
from localstack.services.cloudformation.resource_provider import (
    CloudFormationResourceProviderPlugin,
    OperationStatus,
    ProgressEvent,
    ResourceProvider,
    ResourceRequest,
)


class ApiGatewayAuthorizerProperties(TypedDict, total=False):
    RestApiId: str
    Name: str
    Type: str
    AuthorizerId: str
    AuthType: str
    AuthorizerCredentials: str
    AuthorizerResultTtlInSeconds: int
    AuthorizerUri: str
    IdentitySource: str
    IdentityValidationExpression: str
    ProviderARNs: list[str]


# CloudFormation property -> API Gateway parameter (CreateAuthorizer) and patch path (UpdateAuthorizer).
SCALARS = {
    "Name": ("name", "/name"),
    "Type": ("type", "/type"),
    "AuthType": ("authType", "/authType"),
    "AuthorizerCredentials": ("authorizerCredentials", "/authorizerCredentials"),
    "AuthorizerResultTtlInSeconds": ("authorizerResultTtlInSeconds", "/authorizerResultTtlInSeconds"),
    "AuthorizerUri": ("authorizerUri", "/authorizerUri"),
    "IdentitySource": ("identitySource", "/identitySource"),
    "IdentityValidationExpression": ("identityValidationExpression", "/identityValidationExpression"),
}


def _ttl(value) -> int:
    # Intrinsic functions can hand numbers over as strings.
    return int(value)


class ApiGatewayAuthorizerProvider(ResourceProvider[ApiGatewayAuthorizerProperties]):
    TYPE = "AWS::ApiGateway::Authorizer"
    SCHEMA = util.get_schema_path(Path(__file__))

    def create(
        self, request: ResourceRequest[ApiGatewayAuthorizerProperties]
    ) -> ProgressEvent[ApiGatewayAuthorizerProperties]:
        model = request.desired_state
        api = request.aws_client_factory.apigateway
        params = {"restApiId": model["RestApiId"]}
        for prop, (param, _) in SCALARS.items():
            if model.get(prop) is not None:
                params[param] = _ttl(model[prop]) if prop == "AuthorizerResultTtlInSeconds" else model[prop]
        if model.get("ProviderARNs"):
            params["providerARNs"] = model["ProviderARNs"]
        response = api.create_authorizer(**params)
        model["AuthorizerId"] = response["id"]
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)

    def read(
        self, request: ResourceRequest[ApiGatewayAuthorizerProperties]
    ) -> ProgressEvent[ApiGatewayAuthorizerProperties]:
        model = request.desired_state
        found = request.aws_client_factory.apigateway.get_authorizer(
            restApiId=model["RestApiId"], authorizerId=model["AuthorizerId"]
        )
        return ProgressEvent(
            status=OperationStatus.SUCCESS, resource_model=_from_api(model["RestApiId"], found)
        )

    def list(
        self, request: ResourceRequest[ApiGatewayAuthorizerProperties]
    ) -> ProgressEvent[ApiGatewayAuthorizerProperties]:
        rest_api_id = request.desired_state["RestApiId"]
        items = request.aws_client_factory.apigateway.get_authorizers(restApiId=rest_api_id).get("items", [])
        return ProgressEvent(
            status=OperationStatus.SUCCESS,
            resource_models=[_from_api(rest_api_id, item) for item in items],
        )

    def update(
        self, request: ResourceRequest[ApiGatewayAuthorizerProperties]
    ) -> ProgressEvent[ApiGatewayAuthorizerProperties]:
        model = request.desired_state
        previous = request.previous_state or {}
        model["AuthorizerId"] = previous["AuthorizerId"]
        operations = []
        for prop, (_, patch_path) in SCALARS.items():
            if model.get(prop) == previous.get(prop):
                continue
            if model.get(prop) is None:
                operations.append({"op": "remove", "path": patch_path})
            else:
                operations.append({"op": "replace", "path": patch_path, "value": str(model[prop])})
        if sorted(model.get("ProviderARNs") or []) != sorted(previous.get("ProviderARNs") or []):
            return ProgressEvent(
                status=OperationStatus.FAILED,
                resource_model=model,
                error_code="NotUpdatable",
                message="changing ProviderARNs in place is not supported by this provider",
            )
        if operations:
            request.aws_client_factory.apigateway.update_authorizer(
                restApiId=model["RestApiId"],
                authorizerId=model["AuthorizerId"],
                patchOperations=operations,
            )
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)

    def delete(
        self, request: ResourceRequest[ApiGatewayAuthorizerProperties]
    ) -> ProgressEvent[ApiGatewayAuthorizerProperties]:
        model = request.desired_state
        request.aws_client_factory.apigateway.delete_authorizer(
            restApiId=model["RestApiId"], authorizerId=model["AuthorizerId"]
        )
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model={})


def _from_api(rest_api_id: str, found: dict) -> ApiGatewayAuthorizerProperties:
    model: ApiGatewayAuthorizerProperties = {"RestApiId": rest_api_id, "AuthorizerId": found["id"]}
    for prop, (param, _) in SCALARS.items():
        if found.get(param) is not None:
            model[prop] = found[param]
    if found.get("providerARNs"):
        model["ProviderARNs"] = found["providerARNs"]
    return model


class ApiGatewayAuthorizerProviderPlugin(CloudFormationResourceProviderPlugin):
    name = "AWS::ApiGateway::Authorizer"

    def __init__(self):
        self.factory: type[ResourceProvider] | None = None

    def load(self):
        self.factory = ApiGatewayAuthorizerProvider
