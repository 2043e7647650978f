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
    // The model is pure: it imports only the model itself and src/errors.ts; no I/O, no libraries,
    // no node:* modules, nothing from test/. One library is allowed: re2js (pure JavaScript RE2,
    // linear-time matching, no I/O), for the route rewrite regexes validated and compiled at build
    // time (route-options.ts). Every other library stays out: the list below names those installed.
    files: ['src/model/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: ['node:*', '../*', '!../errors.js', '../../*', 'undici', 'pino', 'prom-client', 'yaml', 'zod', 'chokidar', 'consul'] }],
    },
  },
  {
    // Production code never imports the test servers (the model's own rule above covers it there).
    files: ['src/**/*.ts'],
    ignores: ['src/model/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['**/test/**', '../../test/*'] }] },
  },
  {
    files: ['src/proxy/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['**/test/**', '**/providers/*', '**/providers/**'] }] },
  },
);
