/**
 * fast-check as the tests use it. fast-check 4 puts the failing assertion in the error's `cause`,
 * which Node's test runner does not print: a property that failed in CI said only "Property failed
 * after 7 tests" and a counterexample. With the error in the report, the reason is in the log.
 */
import fc from 'fast-check';

fc.configureGlobal({ ...fc.readConfigureGlobal(), includeErrorInReport: true });

export default fc;
