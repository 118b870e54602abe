import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import layers from './eslint-rules/layers.mjs';

export default tseslint.config(
  { ignores: ['node_modules/**', '.scratch/**', 'bench/results/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        URL: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-constant-condition': ['error', { checkLoops: false }],
      // Closures that read a variable before its one assignment (late-bound wiring) are fine.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
    },
  },
  {
    files: ['src/**/*.ts'],
    plugins: { outrig: { rules: { layers } } },
    rules: { 'outrig/layers': 'error' },
  },
  {
    // Status has one writer: every other module goes through it (issue 19).
    files: ['src/**/*.ts'],
    ignores: ['src/controller/runtime/status-writer.ts', 'src/store/**'],
    rules: {
      'no-restricted-properties': [
        'error',
        { property: 'updateStatus', message: 'status is written only through the status writer (src/controller/runtime/status-writer.ts)' },
      ],
    },
  },
);
