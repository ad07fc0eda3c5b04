import path from 'node:path';
import { Stage, type Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { readTemplate, type CfnTemplate } from '../../local/template.ts';

/**
 * A synthesized stack's template with its nested stacks' resources merged in (local/template.ts
 * `readTemplate`): the routes, their functions and roles are in the nested stacks of
 * cdk/constructs/route-stacks.ts. The app is synthesized once (CDK caches the assembly).
 */
export function templateOf(stack: Stack): CfnTemplate {
  return readTemplate(path.join(Stage.of(stack)!.synth().directory, stack.templateFile));
}

/** The same, for `aws-cdk-lib/assertions` (`hasResourceProperties`, `findResources`, …). */
export function assertionsTemplateOf(stack: Stack): Template {
  return Template.fromJSON(templateOf(stack) as unknown as Record<string, unknown>);
}
