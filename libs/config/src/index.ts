export * from './run-config';
export * from './presets';
export * from './run-plan';
export * from './schedule-lengths';
export * from './config-paths';
export * from './step-cost';
