/**
 * A fault in a data set's stored bytes or in an import's source that retrying cannot mend: the
 * same bytes give the same error until the data set is imported again or the source is fixed.
 * Job runners fail such jobs at once instead of spending their attempts.
 */
export class PermanentDataError extends Error {}

/** An import's source cannot give a data set: files missing, no class folders, no readable image. */
export class DatasetSourceError extends PermanentDataError {
  override readonly name = 'DatasetSourceError';
}
