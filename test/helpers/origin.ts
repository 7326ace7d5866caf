export { startOrigin, type Origin, type Route, type RequestLog } from '../../src/testing/origin.js';
export { samplePdf, sha256Hex } from '../../src/testing/pdf.js';
