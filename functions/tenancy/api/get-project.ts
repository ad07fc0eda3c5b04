import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { tenantOf } from '../../core/access.ts';
import { getProject, toProjectView } from '../projects.ts';

export const handler = apiHandler(operations.getProject, async ({ path, caller }) => ({
  statusCode: 200,
  body: toProjectView(await getProject(tableName, tenantOf(caller), path.projectId)),
}));
