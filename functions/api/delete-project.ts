import { operations } from '#events/operations.ts';
import { sendGraphMessages } from '../commons/graph-queue.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { deleteProject } from '../domain/projects.ts';

/** 202: the project is marked deleting at once; everything beneath it is released by the graph handler. */
export const handler = apiHandler(operations.deleteProject, async ({ path, caller }) => ({
  statusCode: 202,
  body: await deleteProject(tableName, tenantOf(caller), path.projectId, (message) => sendGraphMessages([{ message, from: `api-${Date.now()}` }])),
}));
