import { Type } from 'typebox';
import { CertificateResource } from '../../model/trust.ts';
import { guarded } from '../errors.ts';
import type { Api, ApiServices } from '../server.ts';
import { errors, listOf } from '../schemas.ts';

const PROFILES = ['host', 'server', 'operator', 'principal', 'authenticator'] as const;

export function certificateRoutes(app: Api, s: ApiServices): void {
  app.get(
    '/certificates',
    {
      schema: {
        tags: ['trust'],
        summary: 'Every certificate the cluster CA issued (named by serial), valid or revoked',
        querystring: Type.Object(
          { profile: Type.Optional(Type.Enum(PROFILES)), host: Type.Optional(Type.String({ maxLength: 63 })) },
          { additionalProperties: false },
        ),
        response: { 200: listOf(CertificateResource), ...errors },
      },
    },
    async (req) => {
      const { profile, host } = req.query;
      const items = (await s.store.certificates.list()).filter((c) => (!profile || c.spec.profile === profile) && (!host || c.spec.hostId === host));
      return { items };
    },
  );

  app.post(
    '/certificates/:ref/revoke',
    {
      schema: {
        tags: ['trust'],
        summary:
          "Revoke a certificate by serial, or every certificate issued to a name (CN); it is refused from then on and listed in the CRL. A host's stream on it is closed at once",
        params: Type.Object({ ref: Type.String({ maxLength: 253, description: 'serial or name' }) }),
        querystring: Type.Object(
          { profile: Type.Optional(Type.Enum(PROFILES, { description: 'which profile, when a name holds certificates of several' })) },
          { additionalProperties: false },
        ),
        response: { 200: listOf(CertificateResource), ...errors },
      },
    },
    async (req) => {
      const items = await guarded(() => s.trust.revokeCertificates(req.params.ref, req.query.profile));
      s.hub.closeRevoked();
      return { items };
    },
  );
}
