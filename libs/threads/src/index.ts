export * from './spawn-module-thread';
export * from './thread-channel';
