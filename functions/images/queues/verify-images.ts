import { VerifyImageMessage } from '#events/images.ts';
import { tableName } from '../../platform/table.ts';
import { queueHandler } from '../../triggers/queue-handler.ts';
import { verifyImage } from '../images.ts';

/** Checks uploaded images against their declared SHA-256, streaming; each image's failure is retried alone. */
export const handler = queueHandler(VerifyImageMessage, (message) => verifyImage(tableName, message.imageId), { name: 'verify message' });
