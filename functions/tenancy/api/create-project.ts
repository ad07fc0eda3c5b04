import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { tenantOf } from '../../core/access.ts';
import { createProject } from '../projects.ts';

export const handler = apiHandler(operations.createProject, async ({ body, caller }) => ({
  statusCode: 201,
  body: await createProject(tableName, tenantOf(caller), body),
}));
