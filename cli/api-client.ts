import { CliError, ExitCode } from './errors.ts';

export interface ApiSettings {
  apiUrl: string;
  token: string;
}

/** One API call: the parsed answer, or a CliError that says what went wrong and what to do. */
export async function callApi<T = any>(settings: ApiSettings, method: string, path: string, body?: unknown): Promise<T> {
  let response: Response;
  try {
    response = await fetch(`${settings.apiUrl.replace(/\/$/, '')}${path}`, {
      method,
      headers: { authorization: `Bearer ${settings.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (error) {
    throw new CliError(ExitCode.unavailable, `cannot reach ${settings.apiUrl}: ${(error as Error).cause ?? (error as Error).message}`, 'check --api-url / STRATOPLANE_API_URL, and that the control plane runs (npm start)');
  }
  const text = await response.text();
  let parsed: any;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = { message: text };
  }
  if (response.ok) return parsed as T;
  const message = `${method} ${path}: ${response.status} ${parsed?.message ?? response.statusText}`;
  if (response.status === 401) throw new CliError(ExitCode.refused, message, 'the token is missing, expired or not ours: set --token / STRATOPLANE_TOKEN (an operator issues one with `npm run -s issue-token -- --tenant <id>`)');
  if (response.status === 403) throw new CliError(ExitCode.refused, message, 'the token does not allow this; a tenant token with tenant:write can change things');
  if (response.status >= 500) throw new CliError(ExitCode.unavailable, message, 'the control plane failed; retry, and if it persists look at its logs');
  throw new CliError(ExitCode.refused, message);
}
