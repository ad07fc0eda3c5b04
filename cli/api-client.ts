import { ApiError, ApiUnreachableError, createApiClient, type ApiClient } from '#events/api-client.ts';
import { CliError, ExitCode } from './errors.ts';

export interface ApiSettings {
  apiUrl: string;
  token: string;
}

/** The typed API client for the CLI's settings. */
export function cliApiClient(settings: ApiSettings): ApiClient {
  return createApiClient({ baseUrl: settings.apiUrl, token: settings.token, timeoutMs: 30_000 });
}

/** What went wrong with an API call, as a CliError that says what to do (and the exit code scripts rely on); anything else unchanged. */
export function cliErrorOf(error: unknown): unknown {
  if (error instanceof ApiUnreachableError) {
    const failure = error.cause as Error | undefined;
    return new CliError(
      ExitCode.unavailable,
      `cannot reach ${error.baseUrl}: ${failure?.cause ?? failure?.message}`,
      'check --api-url / STRATOPLANE_API_URL, and that the control plane runs (npm start)',
    );
  }
  if (!(error instanceof ApiError)) return error;
  const message = `${error.method} ${error.path}: ${error.status} ${error.detail}`;
  if (error.status === 401)
    return new CliError(
      ExitCode.refused,
      message,
      'the token is missing, expired or not ours: set --token / STRATOPLANE_TOKEN (an operator issues one with `npm run -s issue-token -- --tenant <id>`)',
    );
  if (error.status === 403) return new CliError(ExitCode.refused, message, 'the token does not allow this; a tenant token with tenant:write can change things');
  if (error.status >= 500)
    return new CliError(
      ExitCode.unavailable,
      message,
      `the control plane failed; ${error.retryAfterSeconds === undefined ? 'retry' : `retry after ${error.retryAfterSeconds} s`}, and if it persists look at its logs`,
    );
  return new CliError(ExitCode.refused, message);
}
