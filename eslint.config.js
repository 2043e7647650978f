import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-imports': 'off',
    },
  },
  {
    // The model is pure: no I/O, no libraries, no node:* modules.
    files: ['src/model/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: ['node:*', '../providers/*', '../proxy/*', '../control/*', '../admin/*', '../observability/*', 'undici', 'pino', 'prom-client', 'yaml', 'zod', 'chokidar', 'consul'] }],
    },
  },
  {
    // Production code never imports the test servers.
    files: ['src/**/*.ts'],
    ignores: ['src/model/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['**/test/**', '../../test/*'] }] },
  },
  {
    files: ['src/proxy/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['**/test/**', '../providers/*', '../providers/**'] }] },
  },
);
