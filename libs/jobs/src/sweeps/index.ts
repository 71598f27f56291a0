export * from './sweep-spec';
export * from './search-space';
export * from './successive-halving';
export * from './sweep-report';
export * from './sweep-records';
