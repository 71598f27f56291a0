import { CronExpressionParser } from 'cron-parser';

const FIELD_NAMES = 'minute hour day-of-month month day-of-week';

/**
 * Why a cron pattern cannot drive a schedule, or null when it can. BullMQ parses patterns with the
 * same cron-parser, which would also take three fields (as "every minute"), aliases such as
 * "@secondly" and a seconds field; here a pattern has exactly 5 fields, or 6 with seconds first,
 * and its firings must be at least `minIntervalSeconds` apart.
 */
export function cronPatternProblem(pattern: string, tz: string, minIntervalSeconds: number): string | null {
  const fields = pattern.trim().split(/\s+/);
  if (fields.length !== 5 && fields.length !== 6) {
    return `invalid cron pattern: expected 5 fields (${FIELD_NAMES}) or 6 with seconds first, got ${fields.length}`;
  }
  // cron-parser draws H afresh at every parse, and BullMQ parses again for each firing.
  if (fields.some((field) => field.split(',').some((part) => part.startsWith('H')))) {
    return 'invalid cron pattern: hashed values (H) are not supported';
  }
  try {
    const expression = CronExpressionParser.parse(pattern, { tz });
    // Two minutes' worth of the seconds field show every gap within a minute and the step into the
    // next one; with 5 fields the seconds field is just 0, so three firings are compared.
    const firings = 2 * expression.fields.second.values.length + 1;
    let previous = expression.next().getTime();
    for (let index = 1; index < firings; index += 1) {
      const next = expression.next().getTime();
      const gapSeconds = (next - previous) / 1000;
      if (gapSeconds < minIntervalSeconds) {
        return (
          `fires ${gapSeconds} s apart (${new Date(previous).toISOString()} then ${new Date(next).toISOString()}); ` +
          `the shortest allowed interval is ${minIntervalSeconds} s`
        );
      }
      previous = next;
    }
    return null;
  } catch (error) {
    return `invalid cron pattern: ${(error as Error).message}`;
  }
}
