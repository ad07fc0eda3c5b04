import { randomBytes } from 'node:crypto';

/** `vm-3f9a0c1b2d4e`: a kind prefix and 48 random bits. */
export const newId = (prefix: string) => `${prefix}-${randomBytes(6).toString('hex')}`;
