import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { tenantOf } from '../../core/access.ts';
import { listProjects } from '../projects.ts';

export const handler = apiHandler(operations.listProjects, async ({ query, caller }) => ({
  statusCode: 200,
  body: await listProjects(tableName, tenantOf(caller), query.limit, query.nextToken),
}));
