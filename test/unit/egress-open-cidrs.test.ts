import type { Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../../cdk/app-builder.ts';
import { assertionsTemplateOf } from '../helpers/cdk-template.ts';

/** The private ranges VMs may reach are the operator's deployment setting, handed to agents with their VMs' configs. */
describe('egressOpenCidrs, a setting of the stack', () => {
  const synth = (context: Record<string, unknown>) =>
    buildApp({ context: { regions: 'us-east-1', 'aws:cdk:bundling-stacks': [], ...context } }).stacks.get('us-east-1')!;
  const vmConfigsEnvironment = (template: Template) =>
    Object.values(template.findResources('AWS::Lambda::Function')).find((fn) => fn.Properties.Environment?.Variables?.EGRESS_OPEN_CIDRS !== undefined)
      ?.Properties.Environment.Variables;

  // A synth takes seconds.
  it('opens nothing by default', () => {
    expect(vmConfigsEnvironment(assertionsTemplateOf(synth({})))).toMatchObject({ EGRESS_OPEN_CIDRS: '' });
  }, 60_000);

  it('passes the ranges the operator opened to the route that serves hosts their VMs’ configs', () => {
    expect(vmConfigsEnvironment(assertionsTemplateOf(synth({ egressOpenCidrs: '10.20.0.0/16, 192.168.7.0/24' })))).toMatchObject({
      EGRESS_OPEN_CIDRS: '10.20.0.0/16,192.168.7.0/24',
    });
  }, 60_000);

  it('refuses at synth what is not an IPv4 CIDR', () => {
    expect(() => synth({ egressOpenCidrs: '10.20.0.0/16,example.com' })).toThrow('egressOpenCidrs: example.com is not an IPv4 CIDR (such as 10.20.0.0/16)');
  });
});
