export * from './queues';
export * from './payloads';
export * from './run-record';
export * from './connection';
export * from './producer';
export * from './worker-registry';
