/**
 * A JSON Schema (draft-07) of the RFC 8460 §4.4 report (RPT-6), strict where
 * the RFC is: the five top-level fields, `policies` an array (§4.4 "MUST be an
 * array"), `policy-type` one of three, `result-type` one of the §4.3 types,
 * counts as non-negative integers, date-times in RFC 3339 form, `mx-host` an
 * array (errata 6241). Unknown members are refused, so a typo in a field name
 * fails the test that produced it. Used by the tests that build, send and
 * receive reports; `validateTlsReport` returns the errors (empty: valid).
 */
import Ajv from 'ajv';
// The §4.3 list as the library has it (record.test.ts holds it to the RFC's eleven).
import { RESULT_TYPES } from '#lib/tlsrpt/record';

const DATE_TIME = { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?(Z|[+-]\\d{2}:\\d{2})$' };
const COUNT = { type: 'integer', minimum: 0 };
const STRINGS = { type: 'array', items: { type: 'string' } };
const HOST_NAME = { type: 'string', pattern: '^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$' };

export const TLS_REPORT_SCHEMA = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'SMTP TLS Report (RFC 8460 §4.4)',
  type: 'object',
  required: ['organization-name', 'date-range', 'contact-info', 'report-id', 'policies'],
  additionalProperties: false,
  properties: {
    'organization-name': { type: 'string', minLength: 1 },
    'date-range': {
      type: 'object',
      required: ['start-datetime', 'end-datetime'],
      additionalProperties: false,
      properties: { 'start-datetime': DATE_TIME, 'end-datetime': DATE_TIME },
    },
    'contact-info': { type: 'string', minLength: 1 },
    'report-id': { type: 'string', minLength: 1 },
    policies: { type: 'array', minItems: 1, items: { $ref: '#/definitions/policyResult' } },
  },
  definitions: {
    policyResult: {
      type: 'object',
      required: ['policy', 'summary'],
      additionalProperties: false,
      properties: {
        policy: { $ref: '#/definitions/policy' },
        summary: {
          type: 'object',
          required: ['total-successful-session-count', 'total-failure-session-count'],
          additionalProperties: false,
          properties: { 'total-successful-session-count': COUNT, 'total-failure-session-count': COUNT },
        },
        'failure-details': { type: 'array', items: { $ref: '#/definitions/failureDetails' } },
      },
    },
    policy: {
      type: 'object',
      required: ['policy-type', 'policy-domain'],
      additionalProperties: false,
      properties: {
        'policy-type': { enum: ['sts', 'tlsa', 'no-policy-found'] },
        'policy-string': STRINGS,
        'policy-domain': HOST_NAME,
        'mx-host': STRINGS,
      },
      // An MTA-STS or DANE policy says what it was.
      if: { properties: { 'policy-type': { enum: ['sts', 'tlsa'] } } },
      then: { properties: { 'policy-string': STRINGS }, required: ['policy-string'] },
    },
    failureDetails: {
      type: 'object',
      // RPT-10: RFC 8460 §4.4 marks only receiving-mx-helo, additional-information and failure-reason-code optional.
      required: ['result-type', 'sending-mta-ip', 'receiving-mx-hostname', 'receiving-ip', 'failed-session-count'],
      additionalProperties: false,
      properties: {
        'result-type': { enum: [...RESULT_TYPES] },
        'sending-mta-ip': { type: 'string', minLength: 1 },
        'receiving-mx-hostname': { type: 'string', minLength: 1 },
        'receiving-mx-helo': { type: 'string', minLength: 1 },
        'receiving-ip': { type: 'string', minLength: 1 },
        'failed-session-count': COUNT,
        'additional-information': { type: 'string', minLength: 1 },
        'failure-reason-code': { type: 'string', minLength: 1 },
      },
    },
  },
} as const;

const ajv = new Ajv({ allErrors: true, strict: true });
const validate = ajv.compile(TLS_REPORT_SCHEMA);

/** The schema's complaints about `report` (`path: message`), none when it is a valid §4.4 report. */
export function validateTlsReport(report: unknown): string[] {
  if (validate(report)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || '/'}: ${e.message ?? 'invalid'}`);
}
