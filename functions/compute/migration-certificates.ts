import { X509Certificate } from 'node:crypto';
import type { RegisterHostRequest } from '#events/api.ts';
import { ValidationError } from '../core/errors.ts';

/**
 * A host that moves guests live registers the CA of its TLS identity in migrations, and it must be
 * one: a CA certificate, valid now. Without it no other host could tell it from an impostor.
 */
export function checkMigrationCertificate(request: Pick<RegisterHostRequest, 'liveMigration' | 'migrationCertificate'>, now = Date.now()): void {
  const pem = request.migrationCertificate;
  if (request.liveMigration && !pem)
    throw new ValidationError('body.migrationCertificate: a host that moves guests live (liveMigration) must register its migration CA certificate');
  if (!pem) return;
  if (!request.liveMigration) throw new ValidationError('body.migrationCertificate: only a host that moves guests live (liveMigration) has one');
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(pem);
  } catch (error) {
    throw new ValidationError(`body.migrationCertificate: not a certificate (${(error as Error).message})`);
  }
  if (!certificate.ca) throw new ValidationError('body.migrationCertificate: not a CA certificate');
  if (Date.parse(certificate.validFrom) > now || Date.parse(certificate.validTo) <= now)
    throw new ValidationError(`body.migrationCertificate: not valid now (from ${certificate.validFrom} to ${certificate.validTo})`);
}
