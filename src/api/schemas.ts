/** Request and response schemas shared by the routes. */
import { Type, type TSchema } from 'typebox';
import { Labels } from '../model/common.ts';
import { ErrorBody } from './errors.ts';

export const RefParams = Type.Object({ ref: Type.String({ description: 'id or name' }) });

export function listOf<T extends TSchema>(item: T) {
  return Type.Object({ items: Type.Array(item) });
}

export const MetadataFields = {
  labels: Type.Optional(Labels),
  annotations: Type.Optional(Labels),
};

/** Error responses every route may give; documented in OpenAPI. */
export const errors = {
  400: ErrorBody,
  404: ErrorBody,
  409: ErrorBody,
  422: ErrorBody,
};
