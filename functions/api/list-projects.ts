import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { listProjects } from '../domain/projects.ts';

export const handler = apiHandler(operations.listProjects, async ({ query, caller }) => ({
  statusCode: 200,
  body: await listProjects(tableName, tenantOf(caller), query.limit, query.nextToken),
}));
