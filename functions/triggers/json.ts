/** The value a message body holds, or undefined when it is not JSON; the caller's schema says why it is refused. */
export function parseJsonOrUndefined(text: string | undefined): unknown {
  try {
    return JSON.parse(text ?? '');
  } catch {
    return undefined;
  }
}
