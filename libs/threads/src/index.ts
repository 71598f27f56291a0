export * from './spawn-module-thread';
