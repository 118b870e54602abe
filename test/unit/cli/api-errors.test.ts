import assert from 'node:assert/strict';
import { test } from 'node:test';
import { inCliTerms, type FieldFlags } from '../../../src/cli/api-errors.ts';

const fields: FieldFlags = {
  name: 'NAME',
  memoryMiB: { flag: '--memory', unit: 'MiB' },
  sizeBytes: { flag: '--size', unit: 'bytes' },
  'memory.0.limitMiB': { flag: '--limit', unit: 'MiB' },
  source: '--from-snapshot',
};

test("the API's field problems in the command's flags, with units", () => {
  assert.equal(
    inCliTerms([{ path: 'body.memoryMiB', field: 'memoryMiB', problem: 'must be at least 64', limit: 64 }], fields),
    '--memory must be at least 64 MiB',
  );
  assert.equal(
    inCliTerms([{ path: 'body.sizeBytes', field: 'sizeBytes', problem: 'must be at most 281474976710656', limit: 2 ** 48 }], fields),
    '--size must be at most 256 TiB',
  );
  assert.equal(
    inCliTerms([{ path: 'body.sizeBytes', field: 'sizeBytes', problem: 'is required for an empty volume' }], fields),
    '--size is required for an empty volume',
  );
  assert.equal(inCliTerms([{ path: 'body', field: 'name', problem: "missing required field 'name'" }], fields), 'NAME is required');
  assert.equal(
    inCliTerms([{ path: 'body.memory.0.limitMiB', field: 'memory.0.limitMiB', problem: 'must be at least 0', limit: 0 }], fields),
    '--limit must be at least 0 MiB',
  );
  assert.equal(
    inCliTerms([{ path: 'body.source.snapshot', field: 'source.snapshot', problem: 'must NOT have fewer than 1 characters' }], fields),
    '--from-snapshot must NOT have fewer than 1 characters',
    'the nearest mapped parent',
  );
});

test('details no flag of the command fills leave the API message standing, unless another detail is mapped', () => {
  assert.equal(inCliTerms([{ path: 'body', problem: "unknown field 'colour'" }], fields), undefined);
  assert.equal(inCliTerms([{ path: 'body.vcpus', field: 'vcpus', problem: 'must be at least 1', limit: 1 }], fields), undefined);
  assert.equal(inCliTerms(undefined, fields), undefined);
  assert.equal(
    inCliTerms(
      [
        { path: 'body.memoryMiB', field: 'memoryMiB', problem: 'must be at least 64', limit: 64 },
        { path: 'body.vcpus', field: 'vcpus', problem: 'must be at least 1', limit: 1 },
      ],
      fields,
    ),
    '--memory must be at least 64 MiB; body.vcpus: must be at least 1',
  );
});
