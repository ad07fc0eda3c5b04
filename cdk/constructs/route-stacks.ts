import { CfnResource, NestedStack, Stack } from 'aws-cdk-lib';
import { Resource, RestApi, type IResource, type IRestApi, type Stage } from 'aws-cdk-lib/aws-apigateway';
import type { Construct, IConstruct } from 'constructs';
import { acknowledge } from '../nag.ts';

/*
 * Room to grow (docs/deployment.md#room-to-grow). CloudFormation takes at most 500 resources per
 * stack, and every route costs about six (function, role, policy, Lambda permission, method, often
 * an API resource and a request model). So the routes live in nested stacks, one per group of
 * bounded contexts (the `functions/<context>/` folders), each holding its routes' functions, roles,
 * policies, permissions, methods, models and the API resources only its routes use; the region's
 * stack keeps the REST API itself, its authorizer, validator, stage and deployment, the API
 * resources routes of several nested stacks share, and the description route.
 */

/** Which nested stack holds the routes of each bounded context (`functions/<context>/api/`). */
export const ROUTE_STACKS: Readonly<Record<string, readonly string[]>> = {
  Compute: ['compute'],
  HostSync: ['host-sync'],
  Identity: ['identity'],
  Networks: ['network'],
  ImagesAndDisks: ['images', 'storage'],
  Projects: ['tenancy', 'lifecycle'],
  Shuffle: ['shuffle'],
};

/** Contexts whose routes stay in the region's stack: the API's own description (a RestApi needs a method of its own). */
export const ROUTES_IN_REGION_STACK: readonly string[] = ['discovery'];

/**
 * The most resources a route stack may hold: 40 % of CloudFormation's 500, so that a context can
 * double before its stack needs splitting, and any stack stays far from the limit.
 */
export const ROUTE_STACK_BUDGET = 200;

/** The nested stack that holds the routes of `context`; undefined for the region's stack. */
export function routeStackOf(context: string): string | undefined {
  if (ROUTES_IN_REGION_STACK.includes(context)) return undefined;
  const found = Object.entries(ROUTE_STACKS).find(([, contexts]) => contexts.includes(context));
  if (!found)
    throw new Error(
      `functions/${context}/api/ holds routes but no route stack takes the context ${context}: add it to ROUTE_STACKS in cdk/constructs/route-stacks.ts (a stack of its own, or one with room)`,
    );
  return found[0];
}

/** Why methods have a TOKEN authorizer rather than Cognito (cdk-nag COG4). */
export const COGNITO_REASON =
  'Callers are tenants, host agents and operators holding KMS-signed bearer tokens, not Cognito users: the TOKEN authorizer on every method verifies them';

export interface RouteStackProps {
  restApi: RestApi;
  /** The stage the API is deployed to: Lambda permissions name it in their source ARN. */
  stageName: string;
}

/**
 * A nested stack of routes: the region's REST API imported by id, so methods and resources made
 * here are this stack's resources. The region's stack deploys the API after every route stack
 * (TenantApi makes its deployment depend on them and change with their methods).
 */
export class RouteStack extends NestedStack {
  /** The region's REST API, as this stack refers to it. */
  readonly api: IRestApi;
  private readonly imported = new Map<string, IResource>();

  constructor(scope: Construct, id: string, props: RouteStackProps) {
    super(scope, id, { description: `Stratoplane API routes: ${id}` });
    this.api = RestApi.fromRestApiAttributes(this, 'RestApi', {
      restApiId: props.restApi.restApiId,
      rootResourceId: props.restApi.restApiRootResourceId,
    });
    // A method's ARN (each Lambda permission's source) names the stage; the name, not a reference to
    // the region's stage, which depends on this stack.
    Object.assign(this.api, { deploymentStage: { stageName: props.stageName } as Stage });
    // Its methods: under the imported API's root or under imported resources.
    acknowledge(this, 'COG4', COGNITO_REASON);
    this.node.addValidation({ validate: () => overBudget(this) });
  }

  /** A resource of the region's stack (one that routes of several stacks share), as this stack refers to it. */
  importResource(resource: IResource): IResource {
    let imported = this.imported.get(resource.path);
    if (!imported) {
      const id = `Path${resource.path.replace(/[^A-Za-z0-9]+/g, '_')}`;
      imported =
        resource.path === '/'
          ? this.api.root
          : Resource.fromResourceAttributes(this, id, { resourceId: resource.resourceId, restApi: this.api, path: resource.path });
      this.imported.set(resource.path, imported);
    }
    return imported;
  }
}

/** The resources `stack` itself holds (not those of stacks nested in it). */
export function resourcesIn(stack: Stack): number {
  return stack.node.findAll().filter((construct: IConstruct) => CfnResource.isCfnResource(construct) && Stack.of(construct) === stack).length;
}

function overBudget(stack: RouteStack): string[] {
  const count = resourcesIn(stack);
  if (count <= ROUTE_STACK_BUDGET) return [];
  return [
    `route stack ${stack.node.id} holds ${count} resources, over its budget of ${ROUTE_STACK_BUDGET} (CloudFormation allows 500 a stack): ` +
      `give one of its contexts (${ROUTE_STACKS[stack.node.id]?.join(', ')}) a route stack of its own in ROUTE_STACKS (cdk/constructs/route-stacks.ts); see docs/deployment.md#room-to-grow`,
  ];
}
