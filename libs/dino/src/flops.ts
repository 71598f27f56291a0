// The FLOP count is pure arithmetic on the config; it lives with the config so that the API can
// use it without loading a tensor backend.
export { forwardFlops, trainStepFlops } from '@dinoq/config';
