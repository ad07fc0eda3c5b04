/** What one operation caused, averaged: AWS calls by `service action`, DynamoDB units, function invocations. */
export interface OperationCost {
  name: string;
  calls: Map<string, number>;
  readUnits: number;
  writeUnits: number;
  invocations: Map<string, number>;
}

/** The fleet the measured costs are projected to. */
export interface Assumptions {
  hosts: number;
  vmsPerHost: number;
  vmLifetimeDays: number;
  migrationsPerVmPerDay: number;
  /** Hosts running VMs of one network: a change of a VM's endpoint goes to each of them. */
  hostsPerNetwork: number;
  resyncMinutes: number;
}

/**
 * us-east-1 list prices in dollars (on-demand), as of late 2026: check the services' pricing
 * pages before relying on them. Lambda duration is not measured locally: each invocation is
 * priced at 100 ms of 512 MB on arm64.
 */
export const awsPrices = {
  dynamodbPerMillionReadUnits: 0.125,
  dynamodbPerMillionWriteUnits: 0.625,
  sqsPerMillionRequests: 0.4,
  kmsPerMillionRequests: 3,
  lambdaPerMillionInvocations: 0.2 + 0.1 * 0.5 * 0.0000133334 * 1e6,
  apiGatewayRestPerMillionRequests: 3.5,
};

export interface ProjectionLine {
  what: string;
  perSecond: number;
  dollars: number;
}

export interface Measured {
  operations: OperationCost[];
  /** The same migration in a network on two hosts and on four: the difference is what each host adds. */
  twoHosts: OperationCost;
  fourHosts: OperationCost;
  /** Idle polling per hour: agents' long polls on their host queues. */
  agentPollsPerAgentHour: number;
  /** Idle polling per hour by the functions' queue pollers, for the whole region. */
  functionPollsPerHour: number;
  /** Heartbeats per agent per hour: each one API request, one Lambda invocation and one write unit. */
  heartbeatsPerAgentHour: number;
  apiRequests: (cost: OperationCost) => number;
  lambda: (cost: OperationCost) => number;
  sum: (cost: OperationCost, service: string) => number;
}

/** An operation's price in dollars, from what it was measured to cause. */
export function dollarsOf(cost: Pick<Measured, 'apiRequests' | 'lambda' | 'sum'>, operation: OperationCost): number {
  return (
    (operation.readUnits * awsPrices.dynamodbPerMillionReadUnits +
      operation.writeUnits * awsPrices.dynamodbPerMillionWriteUnits +
      cost.sum(operation, 'sqs') * awsPrices.sqsPerMillionRequests +
      cost.sum(operation, 'kms') * awsPrices.kmsPerMillionRequests +
      cost.lambda(operation) * awsPrices.lambdaPerMillionInvocations +
      cost.apiRequests(operation) * awsPrices.apiGatewayRestPerMillionRequests) /
    1e6
  );
}

/**
 * An operation measured in a network on four hosts, as it would be on `hosts`: every figure moved
 * by what one more host was measured to add (half the difference between four hosts and two).
 */
export function scaledToNetwork(operation: OperationCost, measured: Pick<Measured, 'twoHosts' | 'fourHosts'>, hosts: number): OperationCost {
  const extraHosts = hosts - 4;
  const perHost = (four: number, two: number) => Math.max(0, (four - two) / 2) * extraHosts;
  const scaleMap = (own: Map<string, number>, four: Map<string, number>, two: Map<string, number>) =>
    new Map([...new Set([...own.keys(), ...four.keys()])].map((key) => [key, (own.get(key) ?? 0) + perHost(four.get(key) ?? 0, two.get(key) ?? 0)] as const));
  return {
    name: operation.name,
    calls: scaleMap(operation.calls, measured.fourHosts.calls, measured.twoHosts.calls),
    invocations: scaleMap(operation.invocations, measured.fourHosts.invocations, measured.twoHosts.invocations),
    readUnits: operation.readUnits + perHost(measured.fourHosts.readUnits, measured.twoHosts.readUnits),
    writeUnits: operation.writeUnits + perHost(measured.fourHosts.writeUnits, measured.twoHosts.writeUnits),
  };
}

/** The measured costs at the fleet's rates: what each kind of work costs a month. */
export function projectAt(fleet: Assumptions, measured: Measured): ProjectionLine[] {
  const month = 30 * 86_400;
  const find = (prefix: string) => {
    const found = measured.operations.find((operation) => operation.name.startsWith(prefix));
    if (!found) throw new Error(`no measured operation "${prefix}…"`);
    return found;
  };
  const vms = fleet.hosts * fleet.vmsPerHost;
  const line = (what: string, perSecond: number, operation: OperationCost): ProjectionLine => ({
    what,
    perSecond,
    dollars: perSecond * month * dollarsOf(measured, operation),
  });
  const inNetwork = (operation: OperationCost) => scaledToNetwork(operation, measured, fleet.hostsPerNetwork);
  const sqsOnly = (perSecond: number): number => (perSecond * month * awsPrices.sqsPerMillionRequests) / 1e6;
  return [
    line(`VM creates (${vms.toLocaleString('en-US')} VMs)`, vms / (fleet.vmLifetimeDays * 86_400), inNetwork(find('create a VM (network'))),
    line('VM deletes', vms / (fleet.vmLifetimeDays * 86_400), inNetwork(find('delete a VM'))),
    line('VM migrations', (vms * fleet.migrationsPerVmPerDay) / 86_400, inNetwork(measured.fourHosts)),
    line("agents' periodic resyncs", fleet.hosts / (fleet.resyncMinutes * 60), find("an agent's periodic resync")),
    line("agents' hourly credential renewals", fleet.hosts / 3600, find("an agent's hourly renewal")),
    {
      what: "agents' idle long polls (SQS ReceiveMessage)",
      perSecond: (fleet.hosts * measured.agentPollsPerAgentHour) / 3600,
      dollars: sqsOnly((fleet.hosts * measured.agentPollsPerAgentHour) / 3600),
    },
    {
      what: "agents' heartbeats (API request, Lambda, 1 write each)",
      perSecond: (fleet.hosts * measured.heartbeatsPerAgentHour) / 3600,
      dollars:
        ((fleet.hosts * measured.heartbeatsPerAgentHour) / 3600) *
        month *
        ((awsPrices.apiGatewayRestPerMillionRequests + awsPrices.lambdaPerMillionInvocations + awsPrices.dynamodbPerMillionWriteUnits) / 1e6),
    },
    {
      what: "functions' idle queue polls (per region)",
      perSecond: measured.functionPollsPerHour / 3600,
      dollars: sqsOnly(measured.functionPollsPerHour / 3600),
    },
  ];
}
