import { DecryptCommand, GenerateDataKeyWithoutPlaintextCommand } from '@aws-sdk/client-kms';
import { pairKeyContext } from '#events/tokens.ts';
import { kms } from './clients.ts';
import { setting } from './env.ts';

/**
 * A new VM's network-pair secret: a 256-bit KMS data key of which only the ciphertext is ever
 * seen here, bound by encryption context to the VM, so it cannot be passed off as another VM's.
 */
export async function newPairKeyCiphertext(vmId: string): Promise<string> {
  const { CiphertextBlob } = await kms.send(
    new GenerateDataKeyWithoutPlaintextCommand({ KeyId: setting('vmPairKeyArn'), KeySpec: 'AES_256', EncryptionContext: pairKeyContext(vmId) }),
  );
  return Buffer.from(CiphertextBlob!).toString('base64');
}

/** The plaintext secret, only for as long as it takes to derive one token. */
export async function decryptPairKey(vmId: string, ciphertext: string): Promise<Buffer> {
  const { Plaintext } = await kms.send(
    new DecryptCommand({ KeyId: setting('vmPairKeyArn'), CiphertextBlob: Buffer.from(ciphertext, 'base64'), EncryptionContext: pairKeyContext(vmId) }),
  );
  return Buffer.from(Plaintext!);
}
