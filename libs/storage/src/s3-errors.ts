/** The HTTP status an SDK error carries, if it came from a server answer. */
export function httpStatusOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const metadata = (error as { $metadata?: { httpStatusCode?: unknown } }).$metadata;
  return typeof metadata?.httpStatusCode === 'number' ? metadata.httpStatusCode : undefined;
}

/** The key is absent. A missing bucket is a configuration problem and is not reported as one. */
export function isMissingObject(error: unknown): boolean {
  if (error instanceof Error) {
    if (error.name === 'NoSuchBucket') return false;
    if (error.name === 'NoSuchKey' || error.name === 'NotFound') return true;
  }
  return httpStatusOf(error) === 404;
}

export function describeError(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
