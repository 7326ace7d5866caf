import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // one PostgreSQL server for the tests of the PostgreSQL ledger
    globalSetup: ['test/helpers/postgres-server.ts'],
  },
});
