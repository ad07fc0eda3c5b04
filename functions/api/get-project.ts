import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { getProject, toProjectView } from '../domain/projects.ts';

export const handler = apiHandler(operations.getProject, async ({ path, caller }) => ({
  statusCode: 200,
  body: toProjectView(await getProject(tableName, tenantOf(caller), path.projectId)),
}));
