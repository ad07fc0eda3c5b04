import { functionEnvironment, type FunctionSetting } from '#events/function-environment.ts';

/** Reads a setting the stack must give this function; failing at cold start beats failing per request. */
export function setting(name: FunctionSetting): string {
  const variable = functionEnvironment[name];
  const value = process.env[variable];
  if (!value) throw new Error(`environment variable ${variable} (${name}) is not set`);
  return value;
}

/** A setting the stack may leave out or empty. */
export const optionalSetting = (name: FunctionSetting): string | undefined => process.env[functionEnvironment[name]] || undefined;

/** The region this function runs in (Lambda sets AWS_REGION): the control plane it belongs to. */
export function runtimeRegion(): string {
  const region = process.env.AWS_REGION;
  if (!region) throw new Error('environment variable AWS_REGION is not set');
  return region;
}
