import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { ApiClient } from '#events/api-client.ts';
import type { CreateNetworkRequest, CreateVmRequest } from '#events/api.ts';
import { cliApiClient, cliErrorOf } from './api-client.ts';
import { CliError, ExitCode } from './errors.ts';
import { uploadImage } from './image-upload.ts';
import { details, table } from './output.ts';

/** What a command prints: the API's answer for `--json`, and text for people. */
interface Output {
  json: unknown;
  human: string;
}

interface Context {
  api: ApiClient;
  args: string[];
  options: Record<string, string | boolean | undefined>;
  progress: (line: string) => void;
}

interface Command {
  usage: string;
  options?: NonNullable<ParseArgsConfig['options']>;
  /** Positional arguments it needs, by name. */
  takes?: string[];
  run(context: Context): Promise<Output>;
}

/** A page of up to 100, as a table of these columns. */
const list = <Page>(
  read: (api: ApiClient, query: { limit: number }) => Promise<Page>,
  rows: (page: Page) => Record<string, unknown>[],
  columns: string[],
): Command => ({
  usage: 'list',
  async run({ api }) {
    const answer = await read(api, { limit: 100 });
    return { json: answer, human: table(rows(answer), columns) };
  },
});
const show = (read: (api: ApiClient, id: string) => Promise<Record<string, unknown>>): Command => ({
  usage: 'show <id>',
  takes: ['id'],
  async run({ api, args }) {
    const answer = await read(api, args[0]!);
    return { json: answer, human: details(answer) };
  },
});
const remove = (what: string, deleteIt: (api: ApiClient, id: string) => Promise<void>): Command => ({
  usage: 'delete <id>',
  takes: ['id'],
  async run({ api, args }) {
    await deleteIt(api, args[0]!);
    return { json: { deleted: args[0] }, human: `deleted ${what} ${args[0]}` };
  },
});
/** `vms start|stop|reboot <id> [--wait]`: asks, then (with --wait) follows the VM until it is `until` or failed. */
const power = (
  action: string,
  until: 'running' | 'stopped',
  ask: (api: ApiClient, vmId: string) => Promise<{ vmId: string; state: string; stateReason?: string | undefined; updatedAt: string }>,
): Command => ({
  usage: `${action} <id> [--wait [--timeout S]]    (--wait: until the VM is ${until}, or failed)`,
  takes: ['id'],
  options: waitOption,
  async run(context) {
    const { api, args, options } = context;
    const asked = await ask(api, args[0]!);
    let vm = asked;
    // A reboot answers while the VM still runs: it is done once its host has reported since (its
    // reports replace the reboot's reason and time) and it runs again. A poll may miss the short
    // stopping and starting states in between.
    const rebooted = (now: typeof asked) => Date.parse(now.updatedAt) > Date.parse(asked.updatedAt) && now.stateReason !== asked.stateReason;
    if (options.wait) {
      vm = await waitFor(
        context,
        () => api.getVm({ params: { vmId: asked.vmId } }),
        (now) => `vm ${now.vmId}: ${now.state}${now.stateReason ? ` (${now.stateReason})` : ''}`,
        (now) => now.state === 'failed' || (now.state === until && (action !== 'reboot' || rebooted(now))),
      );
      if (vm.state === 'failed') throw new CliError(ExitCode.refused, `vm ${vm.vmId} failed: ${vm.stateReason}`, `see \`vms console ${vm.vmId}\``);
    }
    return { json: vm, human: details(vm as Record<string, unknown>) };
  },
});
const required = (options: Context['options'], name: string) => {
  const value = options[name];
  if (typeof value !== 'string' || value === '') throw new CliError(ExitCode.usage, `--${name} is required`);
  return value;
};
/** `--metadata KEY=VALUE`, repeated (gcloud's --metadata): the VM's attributes, or undefined when none is given. */
const metadataOption = (given: Context['options'][string]): Record<string, string> | undefined => {
  const entries = given === undefined ? [] : Array.isArray(given) ? given : [given];
  if (entries.length === 0) return undefined;
  return Object.fromEntries(
    entries.map((entry) => {
      const at = String(entry).indexOf('=');
      if (at < 1) throw new CliError(ExitCode.usage, `--metadata ${JSON.stringify(entry)}: KEY=VALUE`);
      return [String(entry).slice(0, at), String(entry).slice(at + 1)];
    }),
  );
};
const requiredNumber = (options: Context['options'], name: string) => {
  required(options, name);
  return number(options, name)!;
};
const number = (options: Context['options'], name: string) => {
  const value = options[name];
  if (value === undefined) return undefined;
  const parsed = Number(value);
  if (!Number.isFinite(parsed)) throw new CliError(ExitCode.usage, `--${name} must be a number`);
  return parsed;
};

/** Polls until `done` says so, showing each new state on stderr; exit code 4 past the timeout. */
async function waitFor<T>(
  context: Context,
  read: () => Promise<T>,
  describe: (value: T) => string,
  done: (value: T) => boolean,
  lookAgain = '`show`',
): Promise<T> {
  const timeoutSeconds = number(context.options, 'timeout') ?? 600;
  const deadline = Date.now() + timeoutSeconds * 1000;
  let last = '';
  for (;;) {
    const value = await read();
    const line = describe(value);
    if (line !== last) context.progress(line);
    last = line;
    if (done(value)) return value;
    if (Date.now() > deadline)
      throw new CliError(
        ExitCode.timeout,
        `still not done after ${timeoutSeconds} s: ${line}`,
        `wait longer with --timeout, or look again later with ${lookAgain}`,
      );
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

const waitOption = { wait: { type: 'boolean' }, timeout: { type: 'string' } } as const;

/** `hosts cordon|uncordon <id>`: placement keeps off a cordoned host; what runs there stays. */
const cordon = (action: 'cordon' | 'uncordon'): Command => ({
  usage: `${action} <id>    (operators: ${action === 'cordon' ? 'keep new VMs and migrations off the host; what runs there stays' : 'let placement use it again'})`,
  takes: ['id'],
  async run({ api, args }) {
    const hostId = args[0]!;
    const host = action === 'cordon' ? await api.cordonHost({ params: { hostId } }) : await api.uncordonHost({ params: { hostId } });
    return { json: host, human: `host ${host.hostId}: ${host.health}${host.cordoned ? ' (cordoned)' : ''}` };
  },
});

const commands: Record<string, Record<string, Command>> = {
  hosts: {
    list: {
      usage: 'list    (operators: every host, with its health and when its agent was last heard from)',
      async run({ api }) {
        const answer = await api.listHosts();
        return { json: answer, human: table(answer.hosts, ['hostId', 'health', 'lastSeen', 'address', 'vmCount', 'capacity', 'vmRuntime', 'region']) };
      },
    },
    show: show((api, hostId) => api.getHost({ params: { hostId } })),
    cordon: cordon('cordon'),
    uncordon: cordon('uncordon'),
    drain: {
      usage:
        'drain <id> [--to HOST]    (operators: cordon the host and move every VM off it, live where both hosts can, to HOST or where placement picks; `hosts show` follows it)',
      takes: ['id'],
      options: { to: { type: 'string' } },
      async run({ api, args, options }) {
        const host = await api.drainHost({ params: { hostId: args[0]! }, body: options.to ? { targetHostId: required(options, 'to') } : {} });
        const stuck = host.drain?.stuck ?? [];
        return {
          json: host,
          human: `host ${host.hostId} draining${host.drain?.targetHostId ? ` to ${host.drain.targetHostId}` : ''}: ${host.drain?.vmsLeft ?? host.vmCount} VM(s) left${stuck.length > 0 ? `; cannot move yet: ${stuck.map((vm) => `${vm.vmId} (${vm.reason})`).join('; ')}` : ''}`,
        };
      },
    },
  },
  networks: {
    list: list(
      (api, query) => api.listNetworks({ query }),
      (page) => page.networks,
      ['networkId', 'name', 'cidr', 'placement', 'region', 'projectId'],
    ),
    show: show((api, networkId) => api.getNetwork({ params: { networkId } })),
    create: {
      usage: 'create --name NAME --cidr CIDR [--project ID] [--placement spread|pack]    (pack: its VMs onto hosts it already runs on)',
      options: { name: { type: 'string' }, cidr: { type: 'string' }, project: { type: 'string' }, placement: { type: 'string' } },
      async run({ api, options }) {
        const network = await api.createNetwork({
          body: {
            name: required(options, 'name'),
            cidr: required(options, 'cidr'),
            ...(options.project ? { projectId: required(options, 'project') } : {}),
            // The API says what it takes (400) when it is neither.
            ...(options.placement ? { placement: required(options, 'placement') as CreateNetworkRequest['placement'] } : {}),
          },
        });
        return { json: network, human: details(network) };
      },
    },
    delete: remove('network', (api, networkId) => api.deleteNetwork({ params: { networkId } })),
  },
  vms: {
    list: list(
      (api, query) => api.listVms({ query }),
      (page) => page.vms,
      ['vmId', 'name', 'state', 'runtime', 'ip', 'hostId', 'region', 'imageId'],
    ),
    show: show((api, vmId) => api.getVm({ params: { vmId } })),
    create: {
      usage:
        'create --name NAME --network ID [--spread-from VM,…] [--image ID] [--machine-type T] [--metadata KEY=VALUE]… [--wait [--timeout S]]    (--wait: until it runs, or failed)\n         operators: --host ID --tenant ID (tenants do not pick hosts; placement does)',
      options: {
        name: { type: 'string' },
        network: { type: 'string' },
        host: { type: 'string' },
        tenant: { type: 'string' },
        'spread-from': { type: 'string' },
        image: { type: 'string' },
        'machine-type': { type: 'string' },
        metadata: { type: 'string', multiple: true },
        ...waitOption,
      },
      async run(context) {
        const { api, options } = context;
        const attributes = metadataOption(options.metadata);
        let vm = await api.createVm({
          body: {
            name: required(options, 'name'),
            networkId: required(options, 'network'),
            ...(options.host ? { hostId: required(options, 'host') } : {}),
            ...(options.tenant ? { tenantId: required(options, 'tenant') } : {}),
            ...(options['spread-from'] ? { spreadFrom: required(options, 'spread-from').split(',') } : {}),
            ...(options.image ? { imageId: required(options, 'image') } : {}),
            ...(options['machine-type'] ? { machineType: required(options, 'machine-type') as CreateVmRequest['machineType'] } : {}),
            ...(attributes ? { attributes } : {}),
          },
        });
        if (options.wait && (vm.state === 'provisioning' || vm.state === 'starting')) {
          vm = await waitFor(
            context,
            () => api.getVm({ params: { vmId: vm.vmId } }),
            (now) => `vm ${now.vmId}: ${now.state}${now.stateReason ? ` (${now.stateReason})` : ''}`,
            (now) => now.state !== 'provisioning' && now.state !== 'starting',
          );
          if (vm.state === 'failed')
            throw new CliError(ExitCode.refused, `vm ${vm.vmId} failed: ${vm.stateReason}`, `delete it (\`vms delete ${vm.vmId}\`) and launch again`);
        }
        return { json: vm, human: details(vm) };
      },
    },
    delete: remove('vm', (api, vmId) => api.deleteVm({ params: { vmId } })),
    migrate: {
      usage:
        'migrate <id> [--spread-from VM,…] [--wait [--timeout S]]    (placement picks another host; a running guest moves live; --wait: until it moved and every host that needs the new tunnel endpoint holds it)\n         operators: --to HOST',
      takes: ['id'],
      options: { to: { type: 'string' }, 'spread-from': { type: 'string' }, ...waitOption },
      async run(context) {
        const { api, args, options } = context;
        const vm = await api.migrateVm({
          params: { vmId: args[0]! },
          body: {
            ...(options.to ? { targetHostId: required(options, 'to') } : {}),
            ...(options['spread-from'] ? { spreadFrom: required(options, 'spread-from').split(',') } : {}),
          },
        });
        if (vm.migration) {
          const { migrationId, targetHostId } = vm.migration;
          const moving = `vm ${vm.vmId} is moving live from ${vm.hostId} to ${targetHostId} (migration ${migrationId}, ${vm.migration.phase})`;
          if (!options.wait) return { json: vm, human: moving };
          context.progress(moving);
          const ended = await waitFor(
            context,
            () => api.getVm({ params: { vmId: vm.vmId } }),
            (now) => (now.migration?.migrationId === migrationId ? `migration ${now.migration.phase}` : `migration ${now.lastMigration?.outcome ?? 'ended'}`),
            (now) => now.migration?.migrationId !== migrationId,
          );
          if (ended.lastMigration?.migrationId === migrationId && ended.lastMigration.outcome === 'aborted')
            throw new CliError(
              ExitCode.failed,
              `migration ${migrationId} aborted: ${ended.lastMigration.reason ?? 'no reason given'}`,
              `vm ${vm.vmId} runs on ${ended.hostId}`,
            );
          const done = ended.lastMigration;
          return {
            json: ended,
            human: `vm ${vm.vmId} now on ${ended.hostId}: moved live${done?.downtimeMs !== undefined ? ` (paused ${done.downtimeMs} ms, transfer ${done.totalMs} ms)` : ''}; every host that needs its tunnel endpoint ${ended.endpoint.address} (version ${ended.endpoint.version}) holds it`,
          };
        }
        const moved = `vm ${vm.vmId} now on ${vm.hostId}: tunnel endpoint ${vm.endpoint.address} (version ${vm.endpoint.version})`;
        if (!options.wait) return { json: vm, human: moved };
        context.progress(moved);
        const convergence = await waitFor(
          context,
          () => api.getVmConvergence({ params: { vmId: vm.vmId } }),
          (now) =>
            `held by ${now.hostsConverged}/${now.hostsTotal} hosts${now.pendingHostIds.length > 0 ? ` (waiting for ${now.pendingHostIds.slice(0, 5).join(', ')}${now.pendingHostIds.length > 5 ? ', …' : ''})` : ''}`,
          // A later migration supersedes this one: its version counts too.
          (now) => now.converged && now.endpoint.version >= vm.endpoint.version,
          `\`vms convergence ${vm.vmId}\``,
        );
        return { json: { ...vm, convergence }, human: `${moved}; every host that needs it holds it (${convergence.hostsTotal})` };
      },
    },
    convergence: {
      usage: "convergence <id>    (which hosts hold the VM's current tunnel endpoint)",
      takes: ['id'],
      async run({ api, args }) {
        const answer = await api.getVmConvergence({ params: { vmId: args[0]! } });
        return { json: answer, human: details(answer) };
      },
    },
    start: power('start', 'running', (api, vmId) => api.startVm({ params: { vmId } })),
    stop: power('stop', 'stopped', (api, vmId) => api.stopVm({ params: { vmId } })),
    reboot: power('reboot', 'running', (api, vmId) => api.rebootVm({ params: { vmId } })),
    console: {
      usage: "console <id>    (the tail of the VM's serial console, as its host last sent it)",
      takes: ['id'],
      async run({ api, args }) {
        const answer = await api.getVmConsoleOutput({ params: { vmId: args[0]! } });
        return { json: answer, human: answer.output.replaceAll('\r', '') || `(vm ${args[0]} has no console output yet)` };
      },
    },
    'known-hosts': {
      usage: 'known-hosts <id>    (append the output to ~/.ssh/known_hosts)',
      takes: ['id'],
      async run({ api, args }) {
        const answer = await api.getHostKeys({ params: { vmId: args[0]! } });
        if (answer.keys.length === 0)
          throw new CliError(
            ExitCode.refused,
            `vm ${args[0]} has not published host keys yet`,
            'they appear once the VM has booted and uploaded them; try again shortly',
          );
        return { json: answer, human: answer.keys.map((key) => key.knownHostsLine).join('\n') };
      },
    },
  },
  disks: {
    list: list(
      (api, query) => api.listDisks({ query }),
      (page) => page.disks,
      ['diskId', 'name', 'state', 'sizeGiB', 'iops', 'throughputMiBps', 'attachedTo'],
    ),
    show: show((api, diskId) => api.getDisk({ params: { diskId } })),
    create: {
      usage: 'create --name NAME --size GIB [--iops N] [--throughput MIBPS] [--project ID]',
      options: { name: { type: 'string' }, size: { type: 'string' }, iops: { type: 'string' }, throughput: { type: 'string' }, project: { type: 'string' } },
      async run({ api, options }) {
        const disk = await api.createDisk({
          body: {
            name: required(options, 'name'),
            sizeGiB: requiredNumber(options, 'size'),
            ...(options.iops ? { iops: requiredNumber(options, 'iops') } : {}),
            ...(options.throughput ? { throughputMiBps: requiredNumber(options, 'throughput') } : {}),
            ...(options.project ? { projectId: required(options, 'project') } : {}),
          },
        });
        return { json: disk, human: details(disk) };
      },
    },
    delete: remove('disk', (api, diskId) => api.deleteDisk({ params: { diskId } })),
    attach: {
      usage: 'attach <id> --vm ID',
      takes: ['id'],
      options: { vm: { type: 'string' } },
      async run({ api, args, options }) {
        const disk = await api.attachDisk({ params: { diskId: args[0]! }, body: { vmId: required(options, 'vm') } });
        return { json: disk, human: `disk ${disk.diskId} attached to vm ${disk.attachedTo}` };
      },
    },
    detach: {
      usage: 'detach <id>',
      takes: ['id'],
      async run({ api, args }) {
        const disk = await api.detachDisk({ params: { diskId: args[0]! } });
        return { json: disk, human: `disk ${disk.diskId} detached` };
      },
    },
  },
  images: {
    list: {
      usage: 'list [--public]    (--public: the images every tenant may launch)',
      options: { public: { type: 'boolean' } },
      async run({ api, options }) {
        const answer = await api.listImages({ query: { limit: 100, ...(options.public ? { owner: 'public' as const } : {}) } });
        return { json: answer, human: table(answer.images, ['imageId', 'name', 'state', 'sizeBytes', 'region', 'public']) };
      },
    },
    show: show((api, imageId) => api.getImage({ params: { imageId } })),
    upload: {
      usage: 'upload FILE --name NAME [--wait [--timeout S]]\n         operators: --public (an image every tenant may launch)',
      takes: ['file'],
      options: { name: { type: 'string' }, public: { type: 'boolean' }, ...waitOption },
      async run(context) {
        let image: { imageId: string; state: string; failureReason?: string } = await uploadImage(
          context.api,
          context.args[0]!,
          required(context.options, 'name'),
          context.progress,
          { public: context.options.public === true },
        );
        if (context.options.wait) {
          image = await waitFor(
            context,
            () => context.api.getImage({ params: { imageId: image.imageId } }),
            (now) => `image ${now.imageId}: ${now.state}`,
            (now) => now.state !== 'verifying',
          );
          if (image.state === 'failed') throw new CliError(ExitCode.refused, `image ${image.imageId} failed: ${image.failureReason}`);
        }
        return { json: image, human: details(image) };
      },
    },
  },
  'service-accounts': {
    list: list(
      (api, query) => api.listServiceAccounts({ query }),
      (page) => page.serviceAccounts,
      ['serviceAccountId', 'name', 'projectId'],
    ),
    show: show((api, serviceAccountId) => api.getServiceAccount({ params: { serviceAccountId } })),
    create: {
      usage: 'create --name NAME [--project ID]',
      options: { name: { type: 'string' }, project: { type: 'string' } },
      async run({ api, options }) {
        const account = await api.createServiceAccount({
          body: { name: required(options, 'name'), ...(options.project ? { projectId: required(options, 'project') } : {}) },
        });
        return { json: account, human: details(account) };
      },
    },
    delete: remove('service account', (api, serviceAccountId) => api.deleteServiceAccount({ params: { serviceAccountId } })),
  },
};

const settingsHelp = `The API and token come from --api-url / STRATOPLANE_API_URL and --token / STRATOPLANE_TOKEN (npm start prints both).
Exit codes: 0 done, 1 refused by the API, 2 bad command line, 3 API unreachable or failing, 4 gave up waiting.`;

function usage(): string {
  const lines = Object.entries(commands).flatMap(([resource, actions]) =>
    Object.values(actions).map((command) => `  stratoplane ${resource} ${command.usage}`),
  );
  return `usage: stratoplane <resource> <action> [options] [--json]
${lines.join('\n')}

\`stratoplane <resource> --help\` lists one resource's actions; \`stratoplane <resource> <action> --help\`, one action's options.
${settingsHelp}`;
}

/** One resource's actions: what `stratoplane vms --help` prints. */
function resourceUsage(resource: string, actions: Record<string, Command>): string {
  return `usage: stratoplane ${resource} <action> [options] [--json]
${Object.values(actions)
  .map((command) => `  stratoplane ${resource} ${command.usage}`)
  .join('\n')}

${settingsHelp}`;
}

const asksForHelp = (word: string | undefined) => word === '--help' || word === '-h' || word === 'help';

async function main(argv: string[]): Promise<number> {
  const [resource, action, ...rest] = argv;
  if (!resource) {
    console.error(usage());
    return ExitCode.usage;
  }
  if (asksForHelp(resource)) {
    console.log(usage());
    return ExitCode.ok;
  }
  const actions = commands[resource];
  if (!actions)
    throw new CliError(ExitCode.usage, `unknown resource: ${resource}`, `the resources: ${Object.keys(commands).join(', ')}; see \`stratoplane --help\``);
  if (asksForHelp(action)) {
    console.log(resourceUsage(resource, actions));
    return ExitCode.ok;
  }
  const command = actions[action ?? ''];
  if (!command)
    throw new CliError(
      ExitCode.usage,
      action ? `unknown action: ${resource} ${action}` : `${resource} needs an action`,
      `actions: ${Object.keys(actions).join(', ')}; see \`stratoplane ${resource} --help\``,
    );
  const parsed = (() => {
    try {
      return parseArgs({
        args: rest,
        allowPositionals: true,
        options: {
          ...command.options,
          json: { type: 'boolean' },
          'api-url': { type: 'string' },
          token: { type: 'string' },
          help: { type: 'boolean', short: 'h' },
        },
      });
    } catch (error) {
      // Node's advice on positionals that start with '-' is noise here.
      const message = (error as Error).message.replace(/\. To specify a positional argument starting with a '-'.*$/s, '');
      throw new CliError(ExitCode.usage, message, `usage: stratoplane ${resource} ${command.usage}`);
    }
  })();
  if (parsed.values.help) {
    console.log(`usage: stratoplane ${resource} ${command.usage}\n  (and --json for the API's answer)\n\n${settingsHelp}`);
    return ExitCode.ok;
  }
  const takes = command.takes ?? [];
  if (parsed.positionals.length !== takes.length)
    throw new CliError(
      ExitCode.usage,
      `${resource} ${action} takes ${takes.length ? takes.map((name) => `<${name}>`).join(' ') : 'no arguments'}`,
      `usage: stratoplane ${resource} ${command.usage}`,
    );
  const settings = {
    apiUrl: (parsed.values['api-url'] as string | undefined) ?? process.env.STRATOPLANE_API_URL ?? 'http://127.0.0.1:3000/v1',
    token: (parsed.values.token as string | undefined) ?? process.env.STRATOPLANE_TOKEN ?? '',
  };
  if (!settings.token)
    throw new CliError(
      ExitCode.usage,
      'no token',
      'set STRATOPLANE_TOKEN or --token (npm start prints a tenant token; operators issue more with `npm run -s issue-token -- --tenant <id>`)',
    );
  const json = parsed.values.json === true;
  const output = await command
    .run({
      api: cliApiClient(settings),
      args: parsed.positionals,
      options: parsed.values as Context['options'],
      // Progress is for people watching; scripts reading --json get only the result on stdout.
      progress: (line) => process.stderr.write(`${line}\n`),
    })
    .catch((error: unknown) => {
      throw cliErrorOf(error);
    });
  console.log(json ? JSON.stringify(output.json, null, 2) : output.human);
  return ExitCode.ok;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (!(error instanceof CliError)) {
      console.error(`stratoplane: ${(error as Error).stack ?? error}`);
      process.exit(ExitCode.unavailable);
    }
    console.error(`stratoplane: ${error.message}`);
    if (error.hint) console.error(`  ${error.hint}`);
    process.exit(error.exitCode);
  },
);
