// JsSIP (with jssip-node-websocket) sends one OPTIONS to Confab and expects 200.
// Usage: node options.js <ws[s]://host:port/> [ca.pem]
// Exit 0 on a 200 answer, 1 on failure or after 15 s. The WSS certificate is verified
// against ca.pem (never switched off).
'use strict';

const fs = require('fs');
const JsSIP = require('jssip');
const NodeWebSocket = require('jssip-node-websocket');

const [url, caFile] = process.argv.slice(2);
if (!url) {
  console.error('usage: node options.js <ws-url> [ca.pem]');
  process.exit(2);
}
const clientConfig = caFile
  ? { tlsOptions: { ca: fs.readFileSync(caFile), rejectUnauthorized: true } }
  : undefined;
const socket = new NodeWebSocket(url, { clientConfig });
const ua = new JsSIP.UA({
  sockets: [socket],
  uri: 'sip:jssip@example.com',
  register: false,
  connection_recovery_min_interval: 30,
  connection_recovery_max_interval: 30,
});

const timer = setTimeout(() => {
  console.error('timeout: no answer within 15 s');
  process.exit(1);
}, 15000);

ua.on('connected', () => {
  ua.sendOptions('sip:confab@example.com', null, {
    eventHandlers: {
      succeeded: (e) => {
        const r = e.response;
        console.log(`OPTIONS answered: ${r.status_code} ${r.reason_phrase} via ${r.getHeader('Via')}`);
        clearTimeout(timer);
        ua.stop();
        setTimeout(() => process.exit(r.status_code === 200 ? 0 : 1), 200);
      },
      failed: (e) => {
        console.error(`OPTIONS failed: ${e.cause}`);
        process.exit(1);
      },
    },
  });
});
ua.on('disconnected', (e) => {
  if (e && e.error) {
    console.error(`WebSocket error: ${e.code || ''} ${e.reason || ''}`);
    process.exit(1);
  }
});
ua.start();
