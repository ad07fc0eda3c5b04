import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { tenantOf } from '../../core/access.ts';
import { projectGraph } from '../project-graph.ts';

export const handler = apiHandler(operations.getProjectGraph, async ({ path, caller }) => ({
  statusCode: 200,
  body: await projectGraph(tableName, tenantOf(caller), path.projectId),
}));
