export { startOrigin, type Origin, type Route, type RequestLog } from '../fixtures/origin.js';
export { samplePdf, sha256Hex } from '../fixtures/pdf.js';
