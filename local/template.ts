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
