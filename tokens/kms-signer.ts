import { DescribeKeyCommand, SignCommand, type KMSClient } from '@aws-sdk/client-kms';
import { keyIdOf } from './kms-public-keys.ts';
import { ALGORITHM, derToJose, signingInputOf, type JwsSigner } from './jws.ts';

/**
 * Signs compact JWS with an asymmetric KMS key (ECC_NIST_P256): the private key never leaves KMS.
 * The key is named by id, ARN or alias; tokens carry its key id as `kid`.
 */
export class KmsJwsSigner implements JwsSigner {
  private keyId: Promise<string> | undefined;

  constructor(
    private readonly kms: KMSClient,
    private readonly key: string,
  ) {}

  async sign(typ: string, payload: Record<string, unknown>): Promise<string> {
    const kid = await this.resolveKeyId();
    const signingInput = signingInputOf({ alg: ALGORITHM, typ, kid }, payload);
    const { Signature } = await this.kms.send(
      new SignCommand({ KeyId: kid, Message: Buffer.from(signingInput), MessageType: 'RAW', SigningAlgorithm: 'ECDSA_SHA_256' }),
    );
    return `${signingInput}.${derToJose(Signature!).toString('base64url')}`;
  }

  /**
   * A key ARN names its key id, so signing with one needs nothing but kms:Sign. An alias may be
   * re-pointed, so it is resolved once per signer and `kid` names the real key.
   */
  private resolveKeyId(): Promise<string> {
    if (/^arn:aws[\w-]*:kms:.*:key\//.test(this.key)) return Promise.resolve(keyIdOf(this.key));
    this.keyId ??= this.kms.send(new DescribeKeyCommand({ KeyId: this.key })).then(({ KeyMetadata }) => {
      if (KeyMetadata?.KeySpec !== 'ECC_NIST_P256' || KeyMetadata.KeyUsage !== 'SIGN_VERIFY') {
        throw new Error(`KMS key ${this.key} is not an ECC_NIST_P256 signing key`);
      }
      return KeyMetadata.KeyId!;
    });
    this.keyId.catch(() => (this.keyId = undefined));
    return this.keyId;
  }
}
