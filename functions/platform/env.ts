/** Reads a variable the deployment must set; failing at cold start beats failing per request. */
export function requiredEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`environment variable ${name} is not set`);
  return value;
}
