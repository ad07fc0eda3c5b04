import { operations } from '#events/operations.ts';
import { sendGraphMessages } from '../../platform/graph-queue.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { tenantOf } from '../../core/access.ts';
import { deleteProject } from '../projects.ts';

/** 202: the project is marked deleting at once; everything beneath it is released by the graph handler. */
export const handler = apiHandler(operations.deleteProject, async ({ path, caller }) => ({
  statusCode: 202,
  body: await deleteProject(tableName, tenantOf(caller), path.projectId, (message) => sendGraphMessages([{ message, from: `api-${Date.now()}` }])),
}));
