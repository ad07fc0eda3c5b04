import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { createProject } from '../domain/projects.ts';

export const handler = apiHandler(operations.createProject, async ({ body, caller }) => ({
  statusCode: 201,
  body: await createProject(tableName, tenantOf(caller), body),
}));
