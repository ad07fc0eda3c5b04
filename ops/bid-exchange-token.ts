import { parseArgs } from 'node:util';
import { resourceId } from '#events/identifiers.ts';
import { exchangeTokenLine, mintExchangeToken } from '#tokens/exchange-tokens.ts';

const usage = `usage: npm run -s bid-exchange-token -- --tenant ID [--label TEXT]

Mints an exchange token for a tenant's bid relay traffic: prints the token on stdout (give it to
the exchange, which sends it as \`Authorization: Bearer <token>\`) and, on stderr, the line to add
to the exchange tokens file (--bid-relay-tokens) of every host the tenant's bidders run on. The
file holds the token's SHA-256, never the token; deleting the line revokes it within a second.
  --tenant ID    whose VMs the exchange may name in ext.bidders
  --label TEXT   a note kept on the line (which exchange, when), letters, digits, - _ . only
Needs nothing from AWS: the token is 32 random bytes.`;

function fail(message: string): never {
  console.error(`bid-exchange-token: ${message}\n\n${usage}`);
  process.exit(2);
}

const { values } = (() => {
  try {
    return parseArgs({ options: { tenant: { type: 'string' }, label: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  } catch (error) {
    return fail((error as Error).message);
  }
})();
if (values.help) {
  console.log(usage);
  process.exit(0);
}
if (!values.tenant || !resourceId.safeParse(values.tenant).success) fail('--tenant ID is required: a tenant id');
if (values.label !== undefined && !/^[A-Za-z0-9_.-]{1,64}$/.test(values.label)) fail('--label is 1-64 letters, digits, - _ or .');
const token = mintExchangeToken();
console.log(token);
console.error(`add to the exchange tokens file of the tenant's hosts:\n${exchangeTokenLine(values.tenant, token, values.label)}`);
