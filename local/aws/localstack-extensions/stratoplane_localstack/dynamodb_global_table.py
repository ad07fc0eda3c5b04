"""CloudFormation resource provider for AWS::DynamoDB::GlobalTable, replacing LocalStack's own.

LocalStack 2026.3's provider (localstack/services/dynamodb/resource_providers/
aws_dynamodb_globaltable.py, `DynamoDBGlobalTableProvider.create`) cannot create a table with a
replica in another region. The type's `Replicas` list names every region the table lives in, the
stack's own included (CDK's TableV2 always lists it), and that provider:

* asks for a replica in the stack's own region too (`ReplicaUpdates: [{Create: {RegionName:
  us-east-1}}]` on the table it has just created in us-east-1), and
* calls UpdateTable inside its loop over the replicas with the list of every replica so far, so
  the second call asks again for the first one.

LocalStack's DynamoDB (v2 provider, `update_table`) keeps a global table as one physical table in
its own region plus a record of the regions it is replicated to (`store.REPLICAS`), and answers a
Create for a region already recorded with "Failed to create a the new replica of table with name:
'<table>' because one or more replicas already existed as tables." That is the error of every
stack whose global table has a second region.

This provider does what AWS's does: CreateTable in the stack's region with the table's
properties (and its own region's replica key), then one UpdateTable per *other* region (DynamoDB
takes one replica change per call), waiting for the table to be ACTIVE after each; time to live
and point-in-time recovery as the template says. An update adds and removes replicas the same way
and changes its own region's key and point-in-time recovery (adding the second region to a
deployed table changes both); other in-place changes are refused, not ignored. Delete removes the
replicas, then the table.

LocalStack forwards every request to a replica region to the one physical table, so a write in one
region is read in the other at once (AWS replicates within about a second).
"""

from __future__ import annotations

from localstack.services.cloudformation.resource_provider import (
    CloudFormationResourceProviderPlugin,
    OperationStatus,
    ProgressEvent,
    ResourceProvider,
    ResourceRequest,
)
from localstack.services.dynamodb.resource_providers import aws_dynamodb_globaltable as localstack_provider
from localstack.services.dynamodb.resource_providers.aws_dynamodb_globaltable import (
    DynamoDBGlobalTableProperties,
)

# The properties CreateTable takes as they are.
CREATE_TABLE_PROPERTIES = [
    "AttributeDefinitions",
    "BillingMode",
    "GlobalSecondaryIndexes",
    "KeySchema",
    "LocalSecondaryIndexes",
    "TableName",
]

# Properties an update may change here: the replicas. Any other change is refused with its name.
UPDATABLE = {"Replicas"}


def _replica_specs(model: DynamoDBGlobalTableProperties) -> dict[str, dict]:
    """Each replica's settings by region."""
    return {replica["Region"]: {k: v for k, v in replica.items() if k != "Region"} for replica in model.get("Replicas") or []}


def _other_regions(model: DynamoDBGlobalTableProperties, own_region: str) -> list[str]:
    return [replica["Region"] for replica in model.get("Replicas") or [] if replica.get("Region") != own_region]


class DynamoDBGlobalTableProvider(ResourceProvider[DynamoDBGlobalTableProperties]):
    TYPE = "AWS::DynamoDB::GlobalTable"
    # LocalStack's copy of AWS's resource schema for the type.
    SCHEMA = localstack_provider.DynamoDBGlobalTableProvider.SCHEMA

    def create(
        self, request: ResourceRequest[DynamoDBGlobalTableProperties]
    ) -> ProgressEvent[DynamoDBGlobalTableProperties]:
        model = request.desired_state
        dynamodb = request.aws_client_factory.dynamodb
        own_region = request.region_name
        context = request.custom_context
        if not context.get("created"):
            params = {key: model[key] for key in CREATE_TABLE_PROPERTIES if model.get(key) is not None}
            if sse := model.get("SSESpecification"):
                params["SSESpecification"] = {"Enabled": bool(sse.get("SSEEnabled")), **({"SSEType": sse["SSEType"]} if sse.get("SSEType") else {})}
                # The key of the stack's own region's replica (customer managed), as on AWS.
                own = next((r for r in model.get("Replicas") or [] if r.get("Region") == own_region), {})
                if key_id := (own.get("SSESpecification") or {}).get("KMSMasterKeyId"):
                    params["SSESpecification"]["KMSMasterKeyId"] = key_id
            if stream := model.get("StreamSpecification"):
                params["StreamSpecification"] = {"StreamEnabled": True, **stream}
            created = dynamodb.create_table(**params)["TableDescription"]
            model["Arn"] = created["TableArn"]
            model["TableId"] = created["TableId"]
            if created.get("LatestStreamArn"):
                model["StreamArn"] = created["LatestStreamArn"]
            context["created"] = True
            context["pending_replicas"] = _other_regions(model, own_region)
            return ProgressEvent(status=OperationStatus.IN_PROGRESS, resource_model=model, custom_context=context)

        progress = self._converge_replicas(request, model)
        if progress is not None:
            return progress

        if not context.get("configured"):
            if ttl := model.get("TimeToLiveSpecification"):
                dynamodb.update_time_to_live(TableName=model["TableName"], TimeToLiveSpecification=ttl)
            own = next((r for r in model.get("Replicas") or [] if r.get("Region") == own_region), {})
            if (own.get("PointInTimeRecoverySpecification") or {}).get("PointInTimeRecoveryEnabled"):
                dynamodb.update_continuous_backups(
                    TableName=model["TableName"],
                    PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
                )
            context["configured"] = True
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model, custom_context=context)

    def _converge_replicas(
        self, request: ResourceRequest[DynamoDBGlobalTableProperties], model: DynamoDBGlobalTableProperties
    ) -> ProgressEvent | None:
        """One replica change per call, each once the table is ACTIVE again; None once none is left."""
        dynamodb = request.aws_client_factory.dynamodb
        context = request.custom_context
        status = dynamodb.describe_table(TableName=model["TableName"])["Table"]["TableStatus"]
        if status != "ACTIVE":
            if status in ("CREATING", "UPDATING"):
                return ProgressEvent(status=OperationStatus.IN_PROGRESS, resource_model=model, custom_context=context)
            return ProgressEvent(
                status=OperationStatus.FAILED,
                resource_model=model,
                custom_context=context,
                message=f"table {model['TableName']} is {status}",
            )
        for change in ("pending_replicas", "removed_replicas"):
            regions = context.get(change) or []
            if regions:
                region = regions.pop(0)
                action = "Create" if change == "pending_replicas" else "Delete"
                dynamodb.update_table(TableName=model["TableName"], ReplicaUpdates=[{action: {"RegionName": region}}])
                return ProgressEvent(status=OperationStatus.IN_PROGRESS, resource_model=model, custom_context=context)
        return None

    def update(
        self, request: ResourceRequest[DynamoDBGlobalTableProperties]
    ) -> ProgressEvent[DynamoDBGlobalTableProperties]:
        model = request.desired_state
        previous = request.previous_state or {}
        own_region = request.region_name
        context = request.custom_context
        if not context.get("planned"):
            changed = sorted(
                key
                for key in set(model) | set(previous)
                if key not in UPDATABLE | {"Arn", "StreamArn", "TableId"} and model.get(key) != previous.get(key)
            )
            if changed:
                return ProgressEvent(
                    status=OperationStatus.FAILED,
                    resource_model=previous,
                    error_code="NotUpdatable",
                    message=f"this provider updates a global table's replicas only, not {', '.join(changed)}",
                )
            before, after = _replica_specs(previous), _replica_specs(model)
            # A replica kept in both: only its own region's encryption key and point-in-time recovery change here.
            for region in sorted(set(before) & set(after)):
                changed = sorted(
                    key
                    for key in set(before[region]) | set(after[region])
                    if before[region].get(key) != after[region].get(key)
                    and not (region == own_region and key in ("SSESpecification", "PointInTimeRecoverySpecification"))
                )
                if changed:
                    return ProgressEvent(
                        status=OperationStatus.FAILED,
                        resource_model=previous,
                        error_code="NotUpdatable",
                        message=f"this provider does not change {', '.join(changed)} of the replica in {region}",
                    )
            own_before, own_after = before.get(own_region, {}), after.get(own_region, {})
            context["own_key"] = (own_after.get("SSESpecification") or {}).get("KMSMasterKeyId")
            context["own_key_changed"] = own_before.get("SSESpecification") != own_after.get("SSESpecification")
            context["own_pitr"] = bool((own_after.get("PointInTimeRecoverySpecification") or {}).get("PointInTimeRecoveryEnabled"))
            context["own_pitr_changed"] = own_before.get("PointInTimeRecoverySpecification") != own_after.get("PointInTimeRecoverySpecification")
            context["pending_replicas"] = [region for region in after if region not in before and region != own_region]
            context["removed_replicas"] = [region for region in before if region not in after and region != own_region]
            context["planned"] = True
            for key in ("Arn", "StreamArn", "TableId"):
                if previous.get(key):
                    model[key] = previous[key]
        dynamodb = request.aws_client_factory.dynamodb
        if context.get("own_key_changed"):
            # Without a key id DynamoDB goes back to the AWS managed key (aws/dynamodb), as AWS does.
            sse = {"Enabled": True, "SSEType": "KMS", **({"KMSMasterKeyId": context["own_key"]} if context.get("own_key") else {})}
            dynamodb.update_table(TableName=model["TableName"], SSESpecification=sse)
            context["own_key_changed"] = False
            return ProgressEvent(status=OperationStatus.IN_PROGRESS, resource_model=model, custom_context=context)
        progress = self._converge_replicas(request, model)
        if progress is not None:
            return progress
        if context.get("own_pitr_changed"):
            dynamodb.update_continuous_backups(
                TableName=model["TableName"],
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": context["own_pitr"]},
            )
            context["own_pitr_changed"] = False
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model, custom_context=context)

    def delete(
        self, request: ResourceRequest[DynamoDBGlobalTableProperties]
    ) -> ProgressEvent[DynamoDBGlobalTableProperties]:
        model = request.desired_state
        dynamodb = request.aws_client_factory.dynamodb
        context = request.custom_context
        if not context.get("deleting"):
            context["deleting"] = True
            context["pending_replicas"] = []
            context["removed_replicas"] = _other_regions(model, request.region_name)
        try:
            progress = self._converge_replicas(request, model)
            if progress is not None:
                return progress
            if not context.get("deleted"):
                dynamodb.delete_table(TableName=model["TableName"])
                context["deleted"] = True
            dynamodb.describe_table(TableName=model["TableName"])
            return ProgressEvent(status=OperationStatus.IN_PROGRESS, resource_model=model, custom_context=context)
        except dynamodb.exceptions.ResourceNotFoundException:
            return ProgressEvent(status=OperationStatus.SUCCESS, resource_model={}, custom_context=context)

    def read(
        self, request: ResourceRequest[DynamoDBGlobalTableProperties]
    ) -> ProgressEvent[DynamoDBGlobalTableProperties]:
        raise NotImplementedError


class DynamoDBGlobalTableProviderPlugin(CloudFormationResourceProviderPlugin):
    name = "AWS::DynamoDB::GlobalTable"

    def __init__(self):
        self.factory: type[ResourceProvider] | None = None

    def load(self):
        self.factory = DynamoDBGlobalTableProvider

