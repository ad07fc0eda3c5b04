/**
 * Exit codes scripts can rely on: 0 done; 1 the API refused (4xx: fix the request); 2 the command
 * line is wrong; 3 the API could not be reached or failed (5xx: retry); 4 gave up waiting; 5 what
 * was waited for ended otherwise (a migration aborted).
 */
export const ExitCode = { ok: 0, refused: 1, usage: 2, unavailable: 3, timeout: 4, failed: 5 } as const;

export class CliError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
    /** What to do about it. */
    readonly hint?: string,
  ) {
    super(message);
  }
}
