import type { TransactItem } from '../core/store.ts';
import { keys } from '../core/table-keys.ts';

/** Attribute names of a VM's record that expressions alias (some are reserved words, e.g. `state`). */
const ALIASED_NAMES: Record<string, string> = {
  '#mig': 'migration',
  '#mid': 'migrationId',
  '#phase': 'phase',
  '#updated': 'updatedAt',
  '#port': 'port',
  '#downtime': 'downtimeMs',
  '#total': 'totalMs',
  '#state': 'state',
};

/** A conditional update of a VM's record in a transaction, naming the aliases its expressions use (DynamoDB refuses unused ones). */
export const vmUpdate = (table: string, vmId: string, update: string, condition: string, values: Record<string, unknown>): TransactItem => ({
  Update: {
    TableName: table,
    Key: keys.vm(vmId),
    UpdateExpression: update,
    ConditionExpression: condition,
    ExpressionAttributeNames: namesIn(update, condition),
    ExpressionAttributeValues: values,
  },
});

/** The aliases an expression uses. */
const namesIn = (...expressions: string[]) =>
  Object.fromEntries(Object.entries(ALIASED_NAMES).filter(([alias]) => expressions.some((expression) => new RegExp(`${alias}\\b`).test(expression))));
