"""A stack whose first deploy fails is rolled back as CloudFormation does: what it created is deleted.

LocalStack 2026.3's CloudFormation engine (v2, `ChangeSetModelExecutor.execute` in
localstack/services/cloudformation/engine/v2/change_set_model_executor.py) stops at the first
resource that fails and sets the stack ROLLBACK_COMPLETE, but deletes nothing it created: the
tables, buckets, keys, aliases, queues and functions of a half-done create stay, and the next
deploy collides with the named ones. On AWS a failed create rolls back: every resource created is
deleted, newest first, except those whose DeletionPolicy is Retain (RetainExceptOnCreate and
Snapshot resources are deleted too: the deploy that created them is the one rolling back), and the
stack ends ROLLBACK_COMPLETE, or ROLLBACK_FAILED when a delete fails. With rollback disabled
(`cdk deploy --no-rollback`, ExecuteChangeSet's DisableRollback) it keeps everything and ends
CREATE_FAILED.

This hook wraps the executor and the provider's ExecuteChangeSet to do that, deleting through
the same resource providers LocalStack created the resources with, and recording each step as a
stack event (DELETE_IN_PROGRESS, DELETE_COMPLETE, DELETE_SKIPPED, DELETE_FAILED) as AWS does.
Updates are left as LocalStack runs them.

Deleting the rolled-back stack (`cdk deploy` does, before it creates the stack again) then goes
as on AWS: what the rollback deleted, or the failed create never made (no physical id in the
stack's record), is not there to delete.
LocalStack's delete runs every resource of the template and, for one it holds no record of,
calls the provider with the template's properties (no physical id): the key, role and log
group providers fail on that and the stack ends DELETE_FAILED (seen in about one run of two).
"""

from __future__ import annotations

import functools
import logging

from localstack.runtime import hooks

LOG = logging.getLogger(__name__)

_DISABLE_ROLLBACK = "_stratoplane_disable_rollback"


@hooks.on_infra_start()
def _roll_back_failed_creates():
    from localstack.aws.api.cloudformation import ChangeAction, ChangeSetType, ResourceStatus, StackStatus
    from localstack.services.cloudformation.engine.v2.change_set_model_executor import ChangeSetModelExecutor
    from localstack.services.cloudformation.engine.v2.change_set_model_preproc import PreprocProperties
    from localstack.services.cloudformation.resource_provider import OperationStatus
    from localstack.services.cloudformation.v2 import provider as provider_module

    execute = ChangeSetModelExecutor.execute

    def execute_and_roll_back(self):
        change_set = self._change_set
        stack = change_set.stack
        if change_set.change_set_type != ChangeSetType.CREATE:
            return execute(self)
        rolls_back = not getattr(change_set, _DISABLE_ROLLBACK, False)
        # LocalStack sets the stack CREATE_FAILED at the failed resource and ROLLBACK_COMPLETE at
        # the end; on AWS it is ROLLBACK_IN_PROGRESS until the rollback is done (or CREATE_FAILED
        # without one), and the CLI waiting on the stack must not see it finished before that.
        set_status = stack.set_stack_status

        def set_status_as_aws(status, reason=None):
            if status in (StackStatus.CREATE_FAILED, StackStatus.ROLLBACK_COMPLETE):
                status = StackStatus.ROLLBACK_IN_PROGRESS if rolls_back else StackStatus.CREATE_FAILED
            if status != stack.status:
                set_status(status, reason)

        stack.set_stack_status = set_status_as_aws
        try:
            result = execute(self)
        finally:
            del stack.set_stack_status
        if not result.failure_message or not rolls_back:
            return result
        template = change_set.processed_template or change_set.template or {}
        policies = {logical_id: resource.get("DeletionPolicy") for logical_id, resource in template.get("Resources", {}).items()}
        failed = []
        # Created in dependency order: deleted in the reverse, so nothing goes before what uses it.
        for logical_id, resource in reversed(list(result.resources.items())):
            if resource.get("ResourceStatus") != ResourceStatus.CREATE_COMPLETE:
                continue
            resource_type = resource["Type"]
            if policies.get(logical_id) == "Retain":
                self._process_event(
                    action=ChangeAction.Remove,
                    logical_resource_id=logical_id,
                    event_status=OperationStatus.SUCCESS,
                    resource_type=resource_type,
                    custom_status=ResourceStatus.DELETE_SKIPPED,
                )
                continue
            self._process_event(
                action=ChangeAction.Remove,
                logical_resource_id=logical_id,
                event_status=OperationStatus.IN_PROGRESS,
                resource_type=resource_type,
            )
            event = self._execute_resource_action(
                action=ChangeAction.Remove,
                logical_resource_id=logical_id,
                resource_type=resource_type,
                before_properties=PreprocProperties(properties=resource.get("Properties") or {}),
                after_properties=None,
                # Leaves the executor's record of the resource alone; it is dropped below once deleted.
                part_of_replacement=True,
            )
            self._process_event(
                action=ChangeAction.Remove,
                logical_resource_id=logical_id,
                event_status=event.status,
                resource_type=resource_type,
                reason=event.message,
            )
            if event.status == OperationStatus.SUCCESS:
                del result.resources[logical_id]
            else:
                failed.append(logical_id)
                LOG.warning("rollback of stack %s could not delete %s: %s", stack.stack_name, logical_id, event.message)
        stack.set_stack_status(StackStatus.ROLLBACK_FAILED if failed else StackStatus.ROLLBACK_COMPLETE)
        return result

    ChangeSetModelExecutor.execute = execute_and_roll_back

    from localstack.services.cloudformation.resource_provider import ProgressEvent

    execute_resource_action = ChangeSetModelExecutor._execute_resource_action

    def execute_resource_action_skipping_absent(self, action, logical_resource_id, *args, **kwargs):
        # The rollback above deletes what this very change set created (part_of_replacement): those
        # are not yet in the stack's record, and must not be skipped. A stack delete deletes what
        # the stack's record holds a physical id for: a resource the record lacks, or holds without
        # one (its create failed; or LocalStack kept an entry with no properties, seen in about one
        # run in three for the first resources of a rolled-back stack), is not there to delete, as
        # on AWS. DELETE_FAILED is among the statuses: one failed delete must not stop the skipping.
        stack = self._change_set.stack
        recorded = (stack.resolved_resources or {}).get(logical_resource_id) or {}
        if (
            action == ChangeAction.Remove
            and not kwargs.get("part_of_replacement")
            and stack.status
            in (StackStatus.ROLLBACK_COMPLETE, StackStatus.ROLLBACK_FAILED, StackStatus.DELETE_IN_PROGRESS, StackStatus.DELETE_FAILED)
            and not recorded.get("PhysicalResourceId")
        ):
            LOG.debug("stack %s: %s no longer exists; nothing to delete", stack.stack_name, logical_resource_id)
            return ProgressEvent(status=OperationStatus.SUCCESS, resource_model={})
        return execute_resource_action(self, action, logical_resource_id, *args, **kwargs)

    ChangeSetModelExecutor._execute_resource_action = execute_resource_action_skipping_absent

    execute_change_set = provider_module.CloudformationProviderV2.execute_change_set

    # functools.wraps keeps the @handler registration (operation, name) the dispatch table reads.
    @functools.wraps(execute_change_set)
    def execute_change_set_noting_rollback(self, context, change_set_name, stack_name=None, *args, **kwargs):
        # LocalStack's dispatcher passes every request member as a keyword.
        if kwargs.get("disable_rollback"):
            state = provider_module.get_cloudformation_store(context.account_id, context.region)
            change_set = provider_module.find_change_set_v2(state, change_set_name, stack_name)
            if change_set:
                setattr(change_set, _DISABLE_ROLLBACK, True)
        return execute_change_set(self, context, change_set_name, stack_name, *args, **kwargs)

    provider_module.CloudformationProviderV2.execute_change_set = execute_change_set_noting_rollback
