import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { findLeftovers, type RetainingTemplate, removeLeftover } from './stack-leftovers.ts';

const usage = `usage: npm run -s cleanup-stack -- --stack NAME [--template FILE] [--yes]

Lists what the deleted CloudFormation stacks named NAME left behind in one region (AWS_REGION):
the resources they retained on delete (the metadata table with its data, the buckets with their
objects, the KMS keys and aliases, the API's access log group and CloudWatch role). With --yes,
removes them: tables (their deletion protection and other regions' replicas first), buckets
(every object version first), aliases, log groups and roles are deleted, KMS keys scheduled for
deletion in 7 days. Queues the control plane made at run time (host and shuffle queues) were
never the stack's: see docs/deployment.md for those.
Without --yes it changes nothing. Nothing a live stack of that name holds is touched.
They are found in CloudFormation's record of the deleted stack (kept 90 days) and, with
--template (e.g. cdk.out/NAME.template.json), by the names the template gives them (the table's,
the buckets', the aliases'), which also finds them once the record is gone; --account is needed
for those names only when no stack of that name was ever in the region.
Use it after \`cdk destroy\` when the data is no longer wanted: until the named ones are gone, the
same deployment name cannot be deployed again in that region.
Needs cloudformation:ListStacks, ListStackResources and the delete permissions of those types.
Locally: AWS_ENDPOINT_URL of the emulator (npm run deploy:local -- --keep prints it).`;

const { values } = parseArgs({
  options: {
    stack: { type: 'string' },
    template: { type: 'string' },
    account: { type: 'string' },
    yes: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  console.log(usage);
  process.exit(0);
}
const region = process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
if (!values.stack || !region) {
  console.error(`cleanup-stack: ${values.stack ? 'set AWS_REGION' : '--stack is required'}\n\n${usage}`);
  process.exit(2);
}

const settings = { region };
const template = values.template ? (JSON.parse(readFileSync(values.template, 'utf8')) as RetainingTemplate) : undefined;
const leftovers = await findLeftovers(settings, values.stack, { template, account: values.account });
if (!values.yes) {
  if (values.json) console.log(JSON.stringify(leftovers, null, 2));
  else if (!leftovers.length) console.log(`no deleted stack named ${values.stack} left anything in ${region}`);
  for (const leftover of values.json ? [] : leftovers) {
    console.log(`would remove: ${leftover.type} ${leftover.physicalId} (${leftover.logicalId}, from the ${leftover.source})`);
  }
  if (leftovers.length && !values.json) console.log('\nnothing changed; --yes removes them');
  process.exit(0);
}
let failed = 0;
for (const leftover of leftovers) {
  const removal = await removeLeftover(settings, leftover);
  if (removal.outcome === 'failed') failed++;
  console.log(`${removal.outcome}: ${leftover.type} ${leftover.physicalId}${removal.detail ? ` (${removal.detail})` : ''}`);
}
console.log(`cleaned stack=${values.stack} leftovers=${leftovers.length} failed=${failed}`);
process.exit(failed ? 1 : 0);
