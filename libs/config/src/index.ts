export * from './run-config';
export * from './presets';
export * from './run-plan';
export * from './step-cost';
