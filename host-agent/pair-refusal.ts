/** A network pair refused, with the HTTP status its asker gets (the VM through its metadata server, or the presenting host). */
export class PairRefusal extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** Who refused: the control plane's refusals are final, a host's may pass (a VM that just moved there). */
    readonly by: 'control plane' | 'host' = 'host',
  ) {
    super(message);
  }
}
