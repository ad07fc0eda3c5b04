import { NestedStack, Stack, Validations, type App } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { flattenCfnReference } from 'cdk-nag/lib/utils/flatten-cfn-reference.js';
import type { IConstruct } from 'constructs';

/*
 * cdk-nag's AwsSolutions rules run in every synth of the app (`cdk synth`/`deploy`, the local
 * runner, the unit tests): a finding that is neither fixed nor acknowledged here, in code, with
 * its reason, stops the synth. Acknowledgements are as narrow as the rule allows: on the
 * construct that has the finding, and for wildcard permissions (IAM5) on the exact action or
 * resource, never the whole rule.
 */

/** Adds the AwsSolutions checks to the app's synth. */
export function checkedByNag(app: App): void {
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
}

/** Acknowledges one AwsSolutions finding (`L1`, `IAM5[Action::s3:List*]`, …) on `scope` and what it holds. */
export function acknowledge(scope: IConstruct, finding: string, reason: string): void {
  Validations.of(scope).acknowledge({ id: `AwsSolutions-${finding}`, reason });
}

/**
 * Acknowledges the IAM5 (wildcard permission) findings of exactly these actions and resources on
 * `scope`. A resource may hold tokens: cdk-nag names it with the logical IDs it refers to
 * (`<Images2D38C313.Arn>/images/*`), which are final only once the app is built (see
 * flat-logical-ids.ts) and its references between stacks are made, so resources are named at
 * validation, before the checks run.
 */
export function acknowledgeWildcards(scope: IConstruct, reason: string, wildcards: { actions?: readonly string[]; resources?: readonly string[] }): void {
  for (const action of wildcards.actions ?? []) acknowledge(scope, `IAM5[Action::${action}]`, reason);
  const resources = wildcards.resources ?? [];
  if (resources.length === 0) return;
  // At validation, once references between stacks are final: a resource of the region's stack is
  // a parameter in a nested one (`<referencetoStratoplaneuseast1ImagePipelineImages4F3F0C72Arn>/images/*`),
  // so in each nested stack `scope` holds, the acknowledgement names it as that stack does.
  scope.node.addValidation({
    validate() {
      const nested = scope.node.findAll().filter((construct): construct is NestedStack => NestedStack.isNestedStack(construct) && construct !== scope);
      for (const [stack, on] of [[Stack.of(scope), scope] as const, ...nested.map((stack) => [stack, stack] as const)]) {
        for (const resource of resources) {
          const named = flattenCfnReference(stack.resolve(resource));
          if (named.includes('*')) acknowledge(on, `IAM5[Resource::${named}]`, reason);
        }
      }
      return [];
    },
  });
}
