/**
 * The result of `ObjectStore.list`: awaiting it collects every key under the prefix (the shape a
 * plain blob store offers), iterating it with `for await` streams keys page by page without
 * holding them all. Nothing is requested until it is awaited or iterated.
 */
export class KeyListing implements Promise<string[]>, AsyncIterable<string> {
  private collected: Promise<string[]> | undefined;

  constructor(private readonly iterateKeys: () => AsyncIterable<string>) {}

  readonly [Symbol.toStringTag] = 'KeyListing';

  [Symbol.asyncIterator](): AsyncIterator<string> {
    return this.iterateKeys()[Symbol.asyncIterator]();
  }

  then<TResult1 = string[], TResult2 = never>(
    onFulfilled?: ((keys: string[]) => TResult1 | PromiseLike<TResult1>) | null,
    onRejected?: ((reason: unknown) => TResult2 | PromiseLike<TResult2>) | null,
  ): Promise<TResult1 | TResult2> {
    return this.collect().then(onFulfilled, onRejected);
  }

  catch<TResult = never>(
    onRejected?: ((reason: unknown) => TResult | PromiseLike<TResult>) | null,
  ): Promise<string[] | TResult> {
    return this.collect().catch(onRejected);
  }

  finally(onFinally?: (() => void) | null): Promise<string[]> {
    return this.collect().finally(onFinally);
  }

  private collect(): Promise<string[]> {
    this.collected ??= (async () => {
      const keys: string[] = [];
      for await (const key of this.iterateKeys()) keys.push(key);
      return keys;
    })();
    return this.collected;
  }
}
