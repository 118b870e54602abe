/** The API's mapping of the controller's refusals: a service's or trust's error keeps its status, code and message. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiError, guarded, toApiError } from '../../../src/api/errors.ts';
import { ServiceError, TrustError } from '../../../src/controller/index.ts';

test('a ServiceError becomes an ApiError with its status, code, message and details', () => {
  const e = toApiError(new ServiceError(409, 'in_use', 'volume v is attached', { instances: ['a'] }));
  assert.ok(e instanceof ApiError);
  assert.deepEqual([e.statusCode, e.code, e.message, e.details], [409, 'in_use', 'volume v is attached', { instances: ['a'] }]);
});

test("a ServiceError about one field names it in the details, as the API's field errors do", () => {
  const e = toApiError(ServiceError.field('sizeBytes', 'is required for an empty volume'));
  assert.ok(e instanceof ApiError);
  assert.equal(e.statusCode, 400);
  assert.equal(e.code, 'invalid_request');
  assert.equal(e.message, 'sizeBytes is required for an empty volume');
  assert.deepEqual(e.details, [{ path: 'body.sizeBytes', field: 'sizeBytes', problem: 'is required for an empty volume' }]);
});

test('guarded maps a TrustError and passes anything else through', async () => {
  await assert.rejects(
    guarded(() => Promise.reject(new TrustError(429, 'too_many_pending', 'wait'))),
    (e: unknown) => e instanceof ApiError && e.statusCode === 429 && e.code === 'too_many_pending',
  );
  const other = new Error('boom');
  await assert.rejects(
    guarded(() => Promise.reject(other)),
    (e: unknown) => e === other,
  );
  assert.equal(await guarded(async () => 7), 7);
});
