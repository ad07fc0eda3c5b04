"""CloudFormation resource provider for CDK's AwsCustomResource (`Custom::AWS`).

LocalStack's community edition has no provider for custom resources at all
(`localstack.services.cloudformation.resource_provider.get_resource_type`: "this is currently
overwritten in PRO to add support for custom resources"): CloudFormation "deploys" one as an
unsupported resource with a made-up id, and every `Fn::GetAtt` on it resolves to a placeholder.
On AWS, CloudFormation sends the request to the function named by `ServiceToken` (CDK's
AwsCustomResource provider, a Node.js function) and waits for its answer; this LocalStack runs no
functions (create_only_executor.py).

The stack uses one AwsCustomResource: a replica region's stack reads its replica's stream ARN with
DynamoDB's DescribeTable at deploy time (cdk/constructs/metadata-table.ts). This provider makes the
SDK call the properties describe, as CDK's provider function does (aws-custom-resource-handler):
`Create` on create, `Update` on update, `Delete` on delete, each a JSON document `{service,
action, parameters, physicalResourceId}`; the physical id is `physicalResourceId.id`, or the
response field `physicalResourceId.responsePath`; the response's fields are the resource's
attributes (`Fn::GetAtt [Id, "Table.LatestStreamArn"]`), kept nested here because LocalStack's
engine looks attributes up by their dotted path. Calls are made in the stack's region with the
engine's own credentials (not the provider function's role), and only with `outputPaths`,
`assumedRoleArn` and `ignoreErrorCodesMatching` absent: a custom resource of any other shape (not
CDK's AwsCustomResource) fails its stack here rather than be faked.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import localstack.services.cloudformation.provider_utils as util
from botocore import xform_name
from localstack.services.cloudformation.resource_provider import (
    CloudFormationResourceProviderPlugin,
    OperationStatus,
    ProgressEvent,
    ResourceProvider,
    ResourceRequest,
)

# The model's own keys; the response's top-level fields sit beside them.
OWN_KEYS = {"ServiceToken", "Create", "Update", "Delete", "InstallLatestAwsSdk", "PhysicalResourceId"}
SUPPORTED_CALL_KEYS = {"service", "action", "parameters", "physicalResourceId", "logApiResponseData"}


class UnsupportedCustomResource(Exception):
    pass


def _call(request: ResourceRequest, document: str | None) -> tuple[dict | None, dict | None]:
    """Makes the SDK call `document` describes; returns it and the response (JSON types only)."""
    if not document:
        return None, None
    call = json.loads(document)
    unsupported = sorted(set(call) - SUPPORTED_CALL_KEYS)
    if unsupported:
        raise UnsupportedCustomResource(f"AwsCustomResource call settings this provider does not implement: {', '.join(unsupported)}")
    # CDK accepts the SDK v3 package name, its short name or the v2 class name: DynamoDB, dynamodb, @aws-sdk/client-dynamodb.
    service = call["service"].removeprefix("@aws-sdk/client-").replace("-", "").lower()
    client = request.aws_client_factory.get_client(service)
    operation = xform_name(call["action"].removesuffix("Command"))
    response = getattr(client, operation)(**(call.get("parameters") or {}))
    response.pop("ResponseMetadata", None)
    return call, json.loads(json.dumps(response, default=_json_default))


def _json_default(value):
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", errors="replace")
    raise TypeError(f"not JSON: {type(value).__name__}")


def _flatten(value, prefix: str = "") -> dict[str, object]:
    """CDK's flatten: nested fields joined by dots, list items by index."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((str(index), item) for index, item in enumerate(value))
    else:
        return {prefix: value} if prefix else {}
    flat: dict[str, object] = {}
    for key, item in items:
        flat.update(_flatten(item, f"{prefix}.{key}" if prefix else key))
    return flat


def _physical_id(call: dict, response: dict | None, fallback: str) -> str:
    spec = call.get("physicalResourceId") or {}
    if spec.get("id"):
        return spec["id"]
    if spec.get("responsePath"):
        value = _flatten(response or {}).get(spec["responsePath"])
        if value is None:
            raise UnsupportedCustomResource(f"the response has no field {spec['responsePath']} for the physical id")
        return str(value)
    return fallback


class AwsCustomResourceProvider(ResourceProvider[dict]):
    TYPE = "AWS::CloudFormation::CustomResource"
    SCHEMA = util.get_schema_path(Path(__file__))

    def _apply(self, request: ResourceRequest[dict], document_key: str, previous: dict | None) -> ProgressEvent[dict]:
        model = {key: value for key, value in request.desired_state.items() if key in OWN_KEYS - {"PhysicalResourceId"}}
        try:
            call, response = _call(request, model.get(document_key))
        except UnsupportedCustomResource as error:
            return ProgressEvent(status=OperationStatus.FAILED, resource_model={}, message=f"{request.resource_type}: {error}")
        if call is None:
            # No call for this event (e.g. no Update): the resource keeps what it had.
            kept = dict(previous or {})
            kept.update(model)
            return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=kept)
        fallback = (previous or {}).get("PhysicalResourceId") or f"{request.stack_name}-{request.logical_resource_id}"
        model["PhysicalResourceId"] = _physical_id(call, response, fallback)
        for key, value in (response or {}).items():
            if key not in OWN_KEYS:
                model[key] = value
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)

    def create(self, request: ResourceRequest[dict]) -> ProgressEvent[dict]:
        return self._apply(request, "Create", None)

    def update(self, request: ResourceRequest[dict]) -> ProgressEvent[dict]:
        return self._apply(request, "Update", request.previous_state)

    def delete(self, request: ResourceRequest[dict]) -> ProgressEvent[dict]:
        if request.desired_state.get("Delete"):
            try:
                _call(request, request.desired_state["Delete"])
            except UnsupportedCustomResource as error:
                return ProgressEvent(status=OperationStatus.FAILED, resource_model={}, message=f"{request.resource_type}: {error}")
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model={})

    def read(self, request: ResourceRequest[dict]) -> ProgressEvent[dict]:
        raise NotImplementedError


class AwsCustomResourceProviderPlugin(CloudFormationResourceProviderPlugin):
    name = "AWS::CloudFormation::CustomResource"

    def __init__(self):
        self.factory: type[ResourceProvider] | None = None

    def load(self):
        self.factory = AwsCustomResourceProvider
