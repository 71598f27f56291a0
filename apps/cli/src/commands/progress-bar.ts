import cliProgress from 'cli-progress';

/** A one-line bar on stderr, so stdout keeps only results; `format` uses cli-progress tokens. */
export function progressBar(format: string): cliProgress.SingleBar {
  return new cliProgress.SingleBar(
    { format, stream: process.stderr, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
}
