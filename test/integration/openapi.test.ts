import { describe, expect, inject, it } from 'vitest';
import { openApiDocument } from '#events/openapi.ts';
import { api, expectOk } from '../helpers/api.ts';
import { operatorToken, tenantToken, tokenFor } from '../helpers/tokens.ts';

describe('the API serves its OpenAPI description', () => {
  it('to every kind of caller, exactly as generated from the schemas', async () => {
    const expected = JSON.parse(JSON.stringify(openApiDocument()));
    for (const token of [tenantToken(), tokenFor('tenant', 'openapi-reader', ['tenant:read']), operatorToken(), tokenFor('host', 'openapi-host')]) {
      expect(await expectOk(api('GET', '/openapi.json', undefined, token))).toEqual(expected);
    }
  });

  it('describes exactly the routes the deployed API has', async () => {
    const document = await expectOk(api('GET', '/openapi.json'));
    const described = Object.entries(document.paths as Record<string, object>).flatMap(([path, methods]) => Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`));
    expect(described.sort()).toEqual([...inject('routes')].sort());
  });

  it('only with a bearer token, like every route', async () => {
    const response = await fetch(`${inject('apiUrl')}/openapi.json`);
    expect(response.status).toBe(401);
  });
});
