/** A network pair refused, with the HTTP status its asker gets (the VM through its metadata server, or the presenting host). */
export class PairRefusal extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}
