/*
 * Per-host access to queues (attribute-based): every host machine's role session carries the
 * principal tag HOST_ID_PRINCIPAL_TAG (its host id, set by the operator on the host's role or as a
 * session tag when the host assumes it). The stack's HostAgentPolicy then lets a host read only the
 * host queue named with its own id, and send to or read from only the shuffle queues whose
 * job-hosts tags name it. Shared by the CDK app (the policy) and the functions (the tags).
 */

/** The principal tag a host's role session carries: its host id. */
export const HOST_ID_PRINCIPAL_TAG = 'stratoplane:host-id';

/** As IAM substitutes it in a policy's Resource or Condition: the calling host's own id. */
export const CALLER_HOST_ID = `\${aws:PrincipalTag/${HOST_ID_PRINCIPAL_TAG}}`;

/**
 * The tags on a shuffle queue that name its job's hosts, as `/h-1/h-7/…/`: a value holds at most
 * 256 characters, so a long list goes on over the following keys. The policy has one statement
 * per key.
 */
export const SHUFFLE_HOSTS_TAG_KEYS = ['stratoplane:job-hosts', 'stratoplane:job-hosts-2', 'stratoplane:job-hosts-3', 'stratoplane:job-hosts-4'] as const;

/** SQS's limit on a tag value. */
const TAG_VALUE_MAX = 256;

/**
 * The job-hosts tags of a shuffle queue: every host id whole within one value, between slashes,
 * so a policy condition `*\/<id>/*` matches exactly the named hosts. Undefined when the hosts do
 * not fit in the keys there are (over a thousand characters of host ids).
 */
export function shuffleHostsTags(hostIds: Iterable<string>): Record<string, string> | undefined {
  const values: string[] = [];
  let current = '/';
  for (const hostId of [...new Set(hostIds)].sort()) {
    if (current.length + hostId.length + 1 > TAG_VALUE_MAX) {
      values.push(current);
      current = '/';
    }
    current += `${hostId}/`;
  }
  if (current !== '/') values.push(current);
  if (values.length > SHUFFLE_HOSTS_TAG_KEYS.length) return undefined;
  return Object.fromEntries(values.map((value, index) => [SHUFFLE_HOSTS_TAG_KEYS[index]!, value]));
}
