import { runtimeRegion } from './env.ts';

/** The region this function runs in (Lambda sets AWS_REGION): the control plane it belongs to. */
export const currentRegion = runtimeRegion();
