/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/libs', '<rootDir>/apps', '<rootDir>/test'],
  testMatch: ['**/test/**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.json' }] },
  moduleNameMapper: { '^@dinoq/([a-z-]+)$': '<rootDir>/libs/$1/src/index.ts' },
  testPathIgnorePatterns: ['/node_modules/', '/dist/'],
  setupFiles: ['<rootDir>/test/jest.setup.ts'],
  testTimeout: 120000,
  // Exit once the suite is done even if a connection is still closing: some runs of the whole
  // suite leave one open after every file has closed its stack (not yet found; each file alone
  // exits), and a run that never exits is a red CI.
  forceExit: true,
};
