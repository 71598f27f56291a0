import './register-gradients';

export * from './params';
export * from './rng';
export * from './model';
export * from './loss';
export * from './center';
export * from './diagnostics';
export * from './schedules';
export * from './ema';
export * from './optim/adamw';
export * from './optim/clip';
export { isRegularized, isLastLayer } from './optim/param-groups';
export * from './step-types';
export * from './train-step';
export * from './non-finite-loss';
export * from './trainer';
export * from './flops';
export * from './safetensors';
export * from './reference-names';
export * from './checkpoint';
export * from './checkpoint-network';
export * from './backend/select-backend';
export {
  installNativeKernels,
  uninstallNativeKernels,
  nativeKernelsInstalled,
  defaultBlasThreads,
} from './backend/native-kernels';
export * from './parallel/parallel-trainer';
export * from './parallel/step-loop';
export * from './parallel/replica-count';
export * from './grad-step';
export * from './train-state';
export * from './diloco';
