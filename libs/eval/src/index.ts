export * from './knn';
export * from './features';
