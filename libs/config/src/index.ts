export * from './run-config';
export * from './presets';
export * from './run-plan';
