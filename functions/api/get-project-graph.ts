import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { projectGraph } from '../domain/project-graph.ts';

export const handler = apiHandler(operations.getProjectGraph, async ({ path, caller }) => ({
  statusCode: 200,
  body: await projectGraph(tableName, tenantOf(caller), path.projectId),
}));
