import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** The parts of a synthesized CloudFormation template the local runner reads. */
export interface CfnResource {
  Type: string;
  Properties?: Record<string, unknown>;
  Metadata?: Record<string, unknown>;
  DependsOn?: string | string[];
}

export interface CfnTemplate {
  Resources: Record<string, CfnResource>;
}

export interface Pseudo {
  region: string;
  accountId: string;
  partition: string;
  stackName: string;
}

/**
 * Resolves CloudFormation intrinsics against resources the runner has created locally. Refs and
 * GetAtts to resources it does not emulate (IAM roles, log groups) resolve to a placeholder ARN
 * so environment values stay printable; nothing local uses them.
 */
export class Resolver {
  private readonly refs = new Map<string, string>();
  private readonly attributes = new Map<string, string>();

  constructor(
    private readonly template: CfnTemplate,
    readonly pseudo: Pseudo,
  ) {}

  setRef(logicalId: string, value: string): void {
    this.refs.set(logicalId, value);
  }

  setAttribute(logicalId: string, attribute: string, value: string): void {
    this.attributes.set(`${logicalId}.${attribute}`, value);
  }

  hasRef(logicalId: string): boolean {
    return this.refs.has(logicalId);
  }

  resolve(value: unknown): unknown {
    if (Array.isArray(value)) return value.map((item) => this.resolve(item));
    if (value === null || typeof value !== 'object') return value;
    const entries = Object.entries(value);
    if (entries.length === 1) {
      const [[key, argument]] = entries as [[string, unknown]];
      switch (key) {
        case 'Ref':
          return this.ref(argument as string);
        case 'Fn::GetAtt': {
          const [id, attribute] = Array.isArray(argument) ? (argument as string[]) : (argument as string).split('.');
          return this.getAtt(id!, attribute!);
        }
        case 'Fn::Join': {
          const [separator, parts] = argument as [string, unknown[]];
          return (this.resolve(parts) as unknown[]).join(separator);
        }
        case 'Fn::Sub':
          return this.sub(argument);
        case 'Fn::Select': {
          const [index, list] = argument as [number, unknown];
          return (this.resolve(list) as unknown[])[Number(index)];
        }
        case 'Fn::Split': {
          const [separator, source] = argument as [string, unknown];
          return String(this.resolve(source)).split(separator);
        }
      }
    }
    return Object.fromEntries(entries.map(([key, item]) => [key, this.resolve(item)]));
  }

  resolveString(value: unknown): string {
    const resolved = this.resolve(value);
    if (typeof resolved !== 'string') throw new Error(`expected a string, got ${JSON.stringify(resolved)}`);
    return resolved;
  }

  private ref(id: string): string {
    switch (id) {
      case 'AWS::Region':
        return this.pseudo.region;
      case 'AWS::AccountId':
        return this.pseudo.accountId;
      case 'AWS::Partition':
        return this.pseudo.partition;
      case 'AWS::StackName':
        return this.pseudo.stackName;
      case 'AWS::URLSuffix':
        return 'amazonaws.com';
    }
    const known = this.refs.get(id);
    if (known !== undefined) return known;
    if (!this.template.Resources[id]) throw new Error(`Ref to unknown resource ${id}`);
    return this.placeholder(id);
  }

  private getAtt(id: string, attribute: string): string {
    const known = this.attributes.get(`${id}.${attribute}`);
    if (known !== undefined) return known;
    if (!this.template.Resources[id]) throw new Error(`GetAtt to unknown resource ${id}`);
    return `${this.placeholder(id)}/${attribute}`;
  }

  private placeholder(id: string): string {
    const type = this.template.Resources[id]!.Type.split('::')[1]!.toLowerCase();
    return `arn:${this.pseudo.partition}:${type}:${this.pseudo.region}:${this.pseudo.accountId}:not-emulated/${this.pseudo.stackName}-${id}`;
  }

  private sub(argument: unknown): string {
    const [text, variables] = Array.isArray(argument) ? (argument as [string, Record<string, unknown>]) : [argument as string, {}];
    return text.replace(/\$\{([^}]+)\}/g, (_, name: string) => {
      if (name in variables) return String(this.resolve(variables[name]));
      if (name.includes('.')) {
        const [id, attribute] = name.split('.') as [string, string];
        return this.getAtt(id, attribute);
      }
      return this.ref(name);
    });
  }
}

export function resourcesOfType(template: CfnTemplate, type: string): [string, CfnResource][] {
  return Object.entries(template.Resources).filter(([, resource]) => resource.Type === type);
}

/**
 * Reads a synthesized stack's template (`cdk.out/<stack>.template.json`) with the resources of its
 * nested stacks merged in (see `withNestedStacks`): what the runner, the tests and the IAM check
 * read as the region's template.
 */
export function readTemplate(templateFile: string): CfnTemplate {
  return withNestedStacks(readJson(templateFile), nestedTemplates(templateFile));
}

/**
 * The resources CloudFormation holds for a synthesized stack: its own and, stack by stack, its
 * nested stacks' (each with CDK's metadata resource, which `readTemplate` leaves out).
 */
export function resourceCount(templateFile: string): number {
  const nestedTemplateOf = nestedTemplates(templateFile);
  const count = (template: CfnTemplate): number =>
    Object.keys(template.Resources).length +
    resourcesOfType(template, 'AWS::CloudFormation::Stack').reduce((sum, [logicalId, resource]) => sum + count(nestedTemplateOf(logicalId, resource)), 0);
  return count(readJson(templateFile));
}

const readJson = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as CfnTemplate;

/** Reads a nested stack's template from beside its top stack's (`cdk.out/`). */
function nestedTemplates(templateFile: string): (logicalId: string, resource: CfnResource) => CfnTemplate {
  const dir = path.dirname(templateFile);
  // A nested stack's assets, its own nested templates included, are in its top stack's manifest.
  const assets = assetFiles(templateFile.replace(/\.template\.json$/, '.assets.json'));
  return (logicalId, resource) => {
    const nested = (resource.Metadata?.['aws:asset:path'] as string | undefined) ?? assets.get(objectKeyOf(resource));
    if (!nested) throw new Error(`nested stack ${logicalId}: its template is not among ${templateFile}'s assets`);
    return readJson(path.join(dir, nested));
  };
}

/** The files of a stack's assets manifest (`<stack>.assets.json`), by the object key they are uploaded as. */
function assetFiles(manifest: string): Map<string, string> {
  if (!existsSync(manifest)) return new Map();
  const { files = {} } = JSON.parse(readFileSync(manifest, 'utf8')) as {
    files?: Record<string, { source: { path?: string }; destinations: Record<string, { objectKey: string }> }>;
  };
  return new Map(
    Object.values(files).flatMap((asset) =>
      asset.source.path ? Object.values(asset.destinations).map((to) => [to.objectKey, asset.source.path!] as const) : [],
    ),
  );
}

/** The S3 object key a nested stack's TemplateURL ends with (`<hash>.json`). */
function objectKeyOf(resource: CfnResource): string {
  return JSON.stringify(resource.Properties?.TemplateURL ?? '').match(/([0-9a-f]{64}\.json)/)?.[1] ?? '';
}

/**
 * One template of a stack and its nested stacks (`AWS::CloudFormation::Stack`, as CDK's
 * NestedStack makes them): every nested resource is added under its own logical ID (two stacks
 * using one is refused), a nested template's `Ref` to one of its parameters becomes the value the
 * parent hands it, and the parent's `Fn::GetAtt [<nested stack>, Outputs.<name>]` the output's value.
 * So whatever reads a template (routes, functions and their roles, queues) reads one that holds
 * them all, written as the region's stack names them. The nested stack resources stay, as
 * resources of the parent; the nested stacks' own CDK metadata resources are left out.
 */
export function withNestedStacks(template: CfnTemplate, nestedTemplateOf: (logicalId: string, resource: CfnResource) => CfnTemplate): CfnTemplate {
  const nested = resourcesOfType(template, 'AWS::CloudFormation::Stack');
  if (nested.length === 0) return template;
  const resources: Record<string, CfnResource> = { ...template.Resources };
  const outputs = new Map<string, Record<string, { Value: unknown }>>();
  for (const [logicalId, resource] of nested) {
    const child = nestedTemplateOf(logicalId, resource) as CfnTemplate & { Outputs?: Record<string, { Value: unknown }> };
    const parameters = new Map(Object.entries((resource.Properties?.Parameters ?? {}) as Record<string, unknown>));
    const substituted = substituteParameters(child, parameters) as typeof child;
    outputs.set(logicalId, substituted.Outputs ?? {});
    for (const [id, childResource] of Object.entries(withNestedStacks(substituted, nestedTemplateOf).Resources)) {
      // CDK's metadata resource (`CDKMetadata`, in every stack the CLI synthesizes) is the parent's.
      if (childResource.Type === 'AWS::CDK::Metadata') continue;
      if (resources[id]) throw new Error(`nested stack ${logicalId} and its parent (or another nested stack) both hold a resource ${id}`);
      resources[id] = childResource;
    }
  }
  const replaceOutputs = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(replaceOutputs);
    if (value === null || typeof value !== 'object') return value;
    const getAtt = (value as Record<string, unknown>)['Fn::GetAtt'];
    if (Object.keys(value).length === 1 && Array.isArray(getAtt) && outputs.has(getAtt[0] as string) && String(getAtt[1]).startsWith('Outputs.')) {
      const output = outputs.get(getAtt[0] as string)![String(getAtt[1]).slice('Outputs.'.length)];
      if (!output) throw new Error(`nested stack ${getAtt[0]} has no output ${getAtt[1]}`);
      return replaceOutputs(output.Value);
    }
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, replaceOutputs(item)]));
  };
  return { ...template, Resources: replaceOutputs(resources) as Record<string, CfnResource> };
}

/** `{ Ref: <parameter> }` → the parameter's value; `Fn::Sub` strings naming one get it as a variable. */
function substituteParameters(value: unknown, parameters: Map<string, unknown>): unknown {
  if (Array.isArray(value)) return value.map((item) => substituteParameters(item, parameters));
  if (value === null || typeof value !== 'object') return value;
  const entries = Object.entries(value);
  if (entries.length === 1) {
    const [[key, argument]] = entries as [[string, unknown]];
    if (key === 'Ref' && typeof argument === 'string' && parameters.has(argument)) return parameters.get(argument);
    if (key === 'Fn::Sub') {
      const [text, variables] = Array.isArray(argument) ? (argument as [string, Record<string, unknown>]) : [argument as string, {}];
      const named = [...text.matchAll(/\$\{([^}.!]+)\}/g)].map((match) => match[1]!).filter((name) => parameters.has(name) && !(name in variables));
      const substituted = Object.fromEntries(Object.entries(variables).map(([name, item]) => [name, substituteParameters(item, parameters)]));
      for (const name of named) substituted[name] = parameters.get(name);
      return { 'Fn::Sub': Object.keys(substituted).length > 0 ? [text, substituted] : text };
    }
  }
  return Object.fromEntries(entries.map(([key, item]) => [key, substituteParameters(item, parameters)]));
}
