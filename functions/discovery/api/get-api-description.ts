import { openApiDocument } from '#events/openapi.ts';
import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';

const document = openApiDocument();

export const handler = apiHandler(operations.getApiDescription, async () => ({ statusCode: 200, body: document }));
