import { jobCatalogue, type JobName, type QueueName } from '@dinoq/jobs';

/**
 * One process's job handlers, keyed by the job catalogue's names. The type parameter maps each
 * job name to what that process registers for it, so `register('evaluate', handler)` checks the
 * handler against the evaluate payload. Registration only records; `check` at start-up refuses
 * a job that the process must run but has no registration for, or has two.
 */
export class JobRegistry<Registrations extends { [N in JobName]?: unknown }> {
  private readonly entries = new Map<JobName, unknown[]>();

  /** `processName` names the process in start-up errors ("the worker process", ...). */
  constructor(readonly processName: string) {}

  register<N extends JobName & keyof Registrations>(name: N, registration: Registrations[N]): this {
    this.entries.set(name, [...(this.entries.get(name) ?? []), registration]);
    return this;
  }

  /** Job names registered with at least one registration that `matches`. */
  names(matches: (registration: Registrations[keyof Registrations]) => boolean = () => true): JobName[] {
    return [...this.entries]
      .filter(([, registrations]) =>
        registrations.some((registration) => matches(registration as Registrations[keyof Registrations])),
      )
      .map(([name]) => name);
  }

  /**
   * Throws unless every job in `required` (job name → the queues it arrives on) has exactly one
   * registration; the message names every such job with its queues.
   */
  check(required: ReadonlyMap<JobName, readonly QueueName[]>): this {
    const problems: string[] = [];
    for (const [name, queues] of required) {
      const count = this.entries.get(name)?.length ?? 0;
      const where = `job "${name}" on queue ${queues.join(', ')}`;
      if (count === 0) problems.push(`${where} has no handler`);
      else if (count > 1) problems.push(`${where} has ${count} handlers; register it once`);
    }
    if (problems.length > 0) {
      throw new Error(`${this.processName} cannot start: ${problems.join('; ')}`);
    }
    return this;
  }

  /** The one registration of a job; `check` at start-up guarantees it for the jobs a process receives. */
  get<N extends JobName & keyof Registrations>(name: N): Registrations[N] {
    const registrations = this.entries.get(name) ?? [];
    if (registrations.length !== 1) {
      throw new Error(`${this.processName} has ${registrations.length} handlers for job "${name}"`);
    }
    return registrations[0] as Registrations[N];
  }

  /** Whether `name` has a registration; narrows a name read from a queue. */
  has(name: string): name is JobName & keyof Registrations {
    return this.entries.has(name as JobName);
  }
}

/**
 * The catalogue's jobs that arrive on any of `queues`, each with those of its queues; `among`
 * narrows them to some job names.
 */
export function jobsOnQueues(
  queues: readonly QueueName[],
  among: readonly JobName[] = Object.keys(jobCatalogue) as JobName[],
): Map<JobName, QueueName[]> {
  const jobs = new Map<JobName, QueueName[]>();
  for (const name of among) {
    const on = jobCatalogue[name].queues.filter((queue) => queues.includes(queue));
    if (on.length > 0) jobs.set(name, on);
  }
  return jobs;
}
